"""The sweep stage on shared storage, as a command: ``python -m stages.sweep`` in a minimal
directory (params.yaml, the train split, the upstream reports).

A bad or unreachable storage fails in one line before any worker starts, and writes nothing.
With ``sweep.workers: 2`` the real objective (LightGBM on a 2,000-row sample) runs in two
local worker processes on a journal file; a rerun resumes the same study.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from postgres_support import free_port
from test_stage_commands import REPO_ROOT, error_lines, run_stage, stage_env

from housing.io import read_json

OUTS = (
    "models/best_params.yaml",
    "reports/sweep/trials.csv",
    "reports/sweep/history.csv",
    "reports/sweep/summary.json",
)
REPORTS = (
    "reports/preprocess/imputation.json",
    "reports/featurize/features.json",
    "reports/select/leaderboard.json",
)
SMALL_SPACE = {
    "n_estimators": {"distribution": "int_uniform", "min": 40, "max": 120},
    "learning_rate": {"distribution": "log_uniform_values", "min": 0.05, "max": 0.2},
    "num_leaves": {"distribution": "int_uniform", "min": 7, "max": 31},
}


def write_params(workdir: Path, **sweep) -> None:
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["sweep"].update(sweep)
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def assert_no_outputs(workdir: Path) -> None:
    for out in OUTS:
        assert not (workdir / out).exists(), out


@pytest.mark.slow
@pytest.mark.parametrize(
    ("storage", "workers", "expected"),
    [
        ("redis://127.0.0.1:6379/0", 1, "sweep.storage: unsupported scheme 'redis' in "),
        ("sqlite:///sweep.db", 2, "SQLite cannot be shared by 2 workers (parallel writers fail "
         "with 'database is locked')"),
        ("postgresql+psycopg://sweep:s3cr3t-pw@127.0.0.1:5432/optuna", 1,
         "postgresql+psycopg://sweep:***@127.0.0.1:5432/optuna' holds a password"),
        ("", 0, "params.yaml sweep.workers: 0 (workers run elsewhere) needs a shared "
         "sweep.storage"),
    ],
)  # fmt: skip
def test_a_bad_storage_fails_in_one_line_and_writes_nothing(tmp_path, storage, workers, expected):
    write_params(tmp_path, storage=storage, workers=workers)

    proc = run_stage(tmp_path, "sweep", TQDM_DISABLE="1")

    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    [line] = error_lines(proc.stderr)
    assert expected in line
    assert "s3cr3t" not in proc.stderr
    assert_no_outputs(tmp_path)


@pytest.mark.slow
def test_a_bad_bagging_setting_fails_in_one_line_and_writes_nothing(tmp_path):
    """The real entry point, once: its schema refuses before any work. Every bagging rule
    (sizes without 1, a size of 0, a string for max_rounds, no mapping) is refused in one
    line naming its key in tests/housing/params, in process."""
    write_params(tmp_path, bagging={"sizes": [2, 3], "max_rounds": 800})
    expected = (
        "params.yaml sweep.bagging.sizes: must be distinct integers >= 1 including 1, got [2, 3]"
    )

    proc = run_stage(tmp_path, "sweep", TQDM_DISABLE="1")

    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    [line] = error_lines(proc.stderr)
    assert expected in line
    assert_no_outputs(tmp_path)


@pytest.mark.slow
def test_an_unreachable_database_fails_in_one_line_and_writes_nothing(tmp_path):
    port = free_port()
    write_params(tmp_path, storage=f"postgresql+psycopg://sweep@127.0.0.1:{port}/optuna")

    proc = run_stage(tmp_path, "sweep", TQDM_DISABLE="1", PGPASSWORD="not-shown-pw")

    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    [line] = error_lines(proc.stderr)
    assert (
        f"sweep.storage: cannot reach the database at postgresql+psycopg://***@127.0.0.1:{port}"
        "/optuna: connection failed:" in line
    )
    assert "not-shown-pw" not in proc.stderr
    assert_no_outputs(tmp_path)


def small_sweep(workdir: Path, housing_df, **sweep) -> None:
    """A 2,000-row train split, the upstream reports and a small sweep in ``workdir``."""
    (workdir / "data/split").mkdir(parents=True)
    housing_df.sample(2000, random_state=3).to_parquet(
        workdir / "data/split/train.parquet", index=False
    )
    for report in REPORTS:
        (workdir / report).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / report, workdir / report)
    write_params(
        workdir,
        cv_folds=2,
        resource_step=40,
        config={
            "method": "bayes",
            "metric": {"name": "cv_rmse", "goal": "minimize"},
            "early_terminate": {"type": "hyperband", "min_iter": 40, "eta": 3},
        },
        spaces={"lightgbm": SMALL_SPACE},
        **sweep,
    )


@pytest.mark.slow
def test_two_workers_run_the_real_sweep_and_a_rerun_resumes(tmp_path, housing_df):
    small_sweep(tmp_path, housing_df, workers=2, n_trials=4)

    proc = run_stage(tmp_path, "sweep", TQDM_DISABLE="1", WANDB_MODE="disabled")

    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / ".sweep/journal.log").is_file()  # the default journal for 2 workers
    best = yaml.safe_load((tmp_path / "models/best_params.yaml").read_text())
    assert best["family"] == "lightgbm" and set(best["params"]) == set(SMALL_SPACE)
    summary = read_json(tmp_path / "reports/sweep/summary.json")
    # The bag is chosen on the sweep's folds after the shared search, within the budget.
    bagging = summary["bagging"]
    assert (
        best["bag"] == bagging["chosen"]
        and bagging["candidates"][str(best["bag"])]["within_one_se"]
    )
    assert bagging["candidates"]["1"]["cv_rmse"] > 0
    for size, row in bagging["candidates"].items():
        assert row["within_budget"] == (
            int(size) * best["params"]["n_estimators"] <= bagging["max_rounds"]
        )
    assert summary["storage"] == "journal" and summary["workers"] == 2
    assert summary["study"].startswith("housing-sweep-") and summary["sweep_id"] == summary["study"]
    assert 4 <= summary["n_finished"] <= 5 and summary["overshoot"] == summary["n_finished"] - 4
    assert set(summary["per_worker"]) <= {"local-0", "local-1"}
    header = (tmp_path / "reports/sweep/trials.csv").read_text().splitlines()[0]
    assert header.startswith("trial,value,best_so_far,state,n_steps,worker,")
    first = {out: (tmp_path / out).read_bytes() for out in OUTS}

    # The same inputs: the same study, its trials already finished, the same outputs.
    again = run_stage(tmp_path, "sweep", TQDM_DISABLE="1", WANDB_MODE="disabled")
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"study {summary['study']} exists: resuming with" in again.stderr
    assert {out: (tmp_path / out).read_bytes() for out in OUTS} == first


def _stage_env() -> dict[str, str]:
    return stage_env(TQDM_DISABLE="1", WANDB_MODE="disabled")


@pytest.mark.slow
def test_with_no_local_worker_the_stage_times_out_in_one_line_and_writes_nothing(
    tmp_path, housing_df
):
    small_sweep(tmp_path, housing_df, storage="sweep.journal", workers=0, n_trials=3, timeout_s=5)

    proc = run_stage(tmp_path, "sweep", TQDM_DISABLE="1", WANDB_MODE="disabled")

    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    [line] = error_lines(proc.stderr)
    assert "sweep.timeout_s (5 s) passed with 0 of 3 trials of study housing-sweep-" in line
    assert "and no local worker" in line
    assert_no_outputs(tmp_path)


@pytest.mark.slow
def test_with_no_local_worker_an_outside_worker_runs_every_trial(tmp_path, housing_df):
    small_sweep(tmp_path, housing_df, storage="sweep.journal", workers=0, n_trials=4)
    log = tmp_path / "stage.log"
    with log.open("w") as out:
        stage = subprocess.Popen(
            [sys.executable, "-m", "stages.sweep"],
            cwd=tmp_path, env=_stage_env(), stdout=out, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    try:
        end = time.monotonic() + 120
        while not (found := re.search(r"--study (housing-sweep-[0-9a-f]+)", log.read_text())):
            assert stage.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < end, "the stage did not create the study in 120 s"
            time.sleep(0.2)
        assert stage.poll() is None  # waiting: it runs no trial itself
        worker = subprocess.run(
            [sys.executable, "-m", "housing.sweep", "worker", "--storage", "sweep.journal",
             "--study", found[1], "--name", "outside"],
            cwd=tmp_path, env=_stage_env(), capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert worker.returncode == 0, worker.stderr[-3000:]
        assert stage.wait(timeout=120) == 0, log.read_text()[-3000:]
    finally:
        if stage.poll() is None:
            stage.kill()
    summary = read_json(tmp_path / "reports/sweep/summary.json")
    assert summary["workers"] == 0 and summary["study"] == found[1]
    assert summary["n_finished"] == 4 and set(summary["per_worker"]) == {"outside"}
    assert "no local worker (sweep.workers: 0); waiting" in log.read_text()
    assert (tmp_path / "models/best_params.yaml").is_file()
