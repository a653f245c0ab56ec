"""W&B side of the sweep: offline per-trial runs on disk, and the online engine's key check."""

from __future__ import annotations

import pytest

from housing.sweep import SweepRunError, parse_sweep_config, run_sweep

CFG = {
    "method": "grid",
    "metric": {"name": "cv_rmse", "goal": "minimize"},
    "parameters": {"depth": {"values": [2, 3]}, "n_estimators": {"value": 10}},
}


def _objective(params, reporter):
    for step in (1, 2):
        reporter.report(step, params["depth"] + 1.0 / step)
    return float(params["depth"])


def test_wandb_engine_without_key_raises_one_line(monkeypatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    with pytest.raises(SweepRunError) as info:
        run_sweep(parse_sweep_config(CFG), _objective, n_trials=2, seed=0, engine="wandb")
    message = str(info.value)
    assert "WANDB_API_KEY" in message and "engine='optuna'" in message
    assert "\n" not in message


@pytest.mark.slow
def test_offline_mode_writes_one_offline_run_per_trial(tmp_path, monkeypatch) -> None:
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path))
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.chdir(tmp_path)
    result = run_sweep(
        parse_sweep_config(CFG),
        _objective,
        n_trials=2,
        seed=0,
        wandb_mode="offline",
        show_progress=False,
    )
    assert result.n_complete == 2 and result.best_params == {"depth": 2, "n_estimators": 10}
    runs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 2
    for run in runs:
        logs = list(run.glob("run-*.wandb"))
        assert logs, f"no run log in {run}"
        data = logs[0].read_bytes()
        # The protobuf log carries the group (sweep id), the config and the metric by name.
        assert result.sweep_id.encode() in data
        assert b"cv_rmse" in data and b"depth" in data and b"trial_state" in data
