"""What a sweep leaves behind: one record per trial and the best of them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

TRIAL_STATES = ("complete", "pruned", "failed")
_FIXED_COLUMNS = ("trial", "value", "best_so_far", "state", "n_steps", "duration_s")


@dataclass
class TrialRecord:
    """One trial: the params the objective got, its final score (None unless complete)."""

    number: int
    params: dict[str, Any]
    value: float | None
    state: str
    intermediate: list[float] = field(default_factory=list)
    duration_s: float = 0.0
    error: str | None = None
    worker: str | None = None  # the worker that ran it, in a shared study


@dataclass
class SweepResult:
    """All trials of a sweep and the best complete one."""

    engine: str
    sweep_id: str
    best_params: dict[str, Any]
    best_value: float
    trials: list[TrialRecord]
    metric_name: str = "value"
    goal: str = "minimize"
    best_number: int = -1

    @property
    def n_complete(self) -> int:
        return sum(t.state == "complete" for t in self.trials)

    @property
    def n_pruned(self) -> int:
        return sum(t.state == "pruned" for t in self.trials)

    @property
    def n_failed(self) -> int:
        return sum(t.state == "failed" for t in self.trials)

    def history_frame(self) -> pd.DataFrame:
        """One row per trial: score, running best, state, step count, duration, the worker
        (only when some trial records one: a shared study), then params.

        A parameter whose name clashes with a fixed column is prefixed ``param.``.
        """
        sign = 1.0 if self.goal == "minimize" else -1.0
        best = math.inf
        rows = []
        with_worker = any(t.worker is not None for t in self.trials)
        fixed = (*_FIXED_COLUMNS, "worker") if with_worker else _FIXED_COLUMNS
        for t in self.trials:
            if t.state == "complete" and t.value is not None and sign * t.value < best:
                best = sign * t.value
            row: dict[str, Any] = {
                "trial": t.number,
                "value": math.nan if t.value is None else t.value,
                "best_so_far": sign * best if math.isfinite(best) else math.nan,
                "state": t.state,
                "n_steps": len(t.intermediate),
                "duration_s": t.duration_s,
            }
            if with_worker:
                row["worker"] = t.worker or ""
            for name, v in t.params.items():
                row[f"param.{name}" if name in fixed else name] = v
            rows.append(row)
        if not rows:
            return pd.DataFrame(columns=list(_FIXED_COLUMNS))
        return pd.DataFrame(rows)

    def summary(self) -> dict[str, Any]:
        """JSON-ready digest for a metrics file."""
        return {
            "engine": self.engine,
            "sweep_id": self.sweep_id,
            "metric": self.metric_name,
            "goal": self.goal,
            "best_value": self.best_value,
            "best_trial": self.best_number,
            "best_params": dict(self.best_params),
            "n_trials": len(self.trials),
            "n_complete": self.n_complete,
            "n_pruned": self.n_pruned,
            "n_failed": self.n_failed,
        }


def best_of(trials: list[TrialRecord], goal: str) -> TrialRecord | None:
    """The complete trial with the best value (earliest on ties), or None."""
    done = [t for t in trials if t.state == "complete" and t.value is not None]
    if not done:
        return None
    sign = 1.0 if goal == "minimize" else -1.0
    return min(done, key=lambda t: (sign * t.value, t.number))  # type: ignore[operator]
