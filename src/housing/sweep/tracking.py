"""Per-trial W&B runs for the embedded engine; a no-op when W&B is disabled.

With ``mode="disabled"`` wandb is never imported, so tests and quick runs pay nothing.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

WANDB_MODES = ("online", "offline", "disabled")


class TrialRun(Protocol):
    """The tracking handle one trial writes to."""

    def log_step(self, step: int, value: float) -> None: ...

    def finish(self, state: str, value: float | None) -> None: ...


class _NullRun:
    def log_step(self, step: int, value: float) -> None:
        return None

    def finish(self, state: str, value: float | None) -> None:
        return None


class _WandbRun:
    """One W&B run: intermediate scores logged under the metric name, the final in the summary."""

    def __init__(self, run: Any, metric_name: str) -> None:
        self._run = run
        self._metric = metric_name

    def log_step(self, step: int, value: float) -> None:
        self._run.log({self._metric: value, "iteration": step})

    def finish(self, state: str, value: float | None) -> None:
        self._run.summary["trial_state"] = state
        if value is not None:
            self._run.summary[self._metric] = value
        self._run.finish(exit_code=1 if state == "failed" else 0)


class TrialTracker:
    """Opens one W&B run per trial, grouped under the sweep id."""

    def __init__(
        self,
        *,
        mode: str,
        project: str,
        entity: str | None,
        group: str,
        metric_name: str,
    ) -> None:
        if mode not in WANDB_MODES:
            raise ValueError(f"wandb_mode must be one of {', '.join(WANDB_MODES)}, got {mode!r}")
        self.mode = mode
        self.project = project
        self.entity = entity
        self.group = group
        self.metric_name = metric_name

    def start(self, number: int, params: dict[str, Any]) -> TrialRun:
        """Start the run for trial ``number`` with its params as the run config."""
        if self.mode == "disabled":
            return _NullRun()
        import wandb  # deferred: about 1 s to import, not needed when disabled

        run = wandb.init(
            mode=self.mode,  # type: ignore[arg-type]
            project=self.project,
            entity=self.entity,
            group=self.group,
            name=f"{self.group}-{number:03d}",
            job_type="sweep-trial",
            config=params,
            reinit="finish_previous",
            # Forwarded per run: wandb freezes its environment at the first init in a process.
            dir=os.environ.get("WANDB_DIR"),
            settings=wandb.Settings(silent=True, console="off", disable_git=True),
        )
        return _WandbRun(run, self.metric_name)
