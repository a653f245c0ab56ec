"""Worker processes (``python -m housing.sweep worker``) on one shared study, on real storages:
a PostgreSQL server started here on a free port, and a journal file.

The objective is the cheap synthetic plan (trials of about a second), so each test takes
seconds; the real objective runs in tests/stages/test_stage_sweep.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState
from postgres_support import psql, running_postgres
from synthetic_plan import plan as synthetic

from housing.sweep.launch import run_local_workers, worker_command
from housing.sweep.shared import create_study, study_result
from housing.sweep.storage import open_storage, parse_storage

HERE = Path(__file__).resolve().parent
PLAN = "synthetic_plan:plan"
pytestmark = pytest.mark.slow


def sweep_params(**over) -> dict:
    return {
        "seed": 3,
        "n_trials": 12,
        "config": {"method": "random", "metric": {"name": "score", "goal": "minimize"}},
        "step_s": 0.4,  # 4 steps: under 2 s a trial (a worker takes ~10 s to start here)
        "heartbeat_s": 1,
        "grace_s": 2,
        "max_retry": 3,
        **over,
    }


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The workers' working directory; they find the synthetic plan on PYTHONPATH."""
    monkeypatch.chdir(tmp_path)
    path = [str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))
    monkeypatch.setenv("WANDB_MODE", "disabled")
    return tmp_path


@pytest.fixture(scope="module")
def postgres() -> int:
    with running_postgres() as (port, _):
        yield port


def database(port: int, name: str) -> str:
    psql(port, f"CREATE DATABASE {name}")
    return f"postgresql+psycopg://postgres@127.0.0.1:{port}/{name}"


def new_study(workdir: Path, storage: str, p: dict) -> tuple[optuna.Study, object]:
    """Write params.yaml and create the study as the sweep stage does."""
    (workdir / "params.yaml").write_text(yaml.safe_dump({"sweep": p}))
    plan = synthetic(p)
    opened = open_storage(parse_storage(storage))
    return create_study(opened, plan, n_trials=p["n_trials"]), plan


def test_three_workers_on_postgresql_share_the_budget(workdir, postgres):
    url = database(postgres, "three_workers")
    p = sweep_params()
    study, plan = new_study(workdir, url, p)

    exits = run_local_workers(url, study.study_name, workers=3, timeout_s=180, plan=PLAN)

    assert [e.returncode for e in exits] == [0, 0, 0]
    shared = study_result(study, plan.spec, n_trials=12)
    # Each worker stops once 12 are finished; the others finish what they run: <= 2 more.
    assert 12 <= shared.n_finished <= 14
    assert shared.overshoot == shared.n_finished - 12
    assert set(shared.per_worker) == {"local-0", "local-1", "local-2"}  # every one contributed
    assert sum(sum(c.values()) for c in shared.per_worker.values()) == shared.n_finished
    # 12+ trials on 8 points: repeats are counted (random search does not avoid them).
    assert shared.duplicates >= shared.n_finished - 8
    assert shared.result.best_params["x"] == 2 and shared.result.best_value == 0.0


def test_a_worker_killed_mid_trial_costs_one_retried_trial(workdir, postgres):
    url = database(postgres, "killed_worker")
    p = sweep_params(n_trials=10)
    study, plan = new_study(workdir, url, p)
    procs = {
        name: subprocess.Popen(worker_command(url, study.study_name, index=i, name=name, plan=PLAN))
        for i, name in enumerate(("victim", "w1", "w2"))
    }
    try:
        deadline = time.monotonic() + 180
        while True:
            running = [
                t for t in study.get_trials(states=(TrialState.RUNNING,))
                if t.user_attrs.get("worker") == "victim"
            ]  # fmt: skip
            if running:
                break
            assert time.monotonic() < deadline, "the victim never started a trial"
            time.sleep(0.1)
        time.sleep(0.3)  # inside its objective
        procs["victim"].send_signal(signal.SIGKILL)
        for name in ("w1", "w2"):
            assert procs[name].wait(timeout=120) == 0, name
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    killed = study.trials[running[0].number]
    assert killed.state == TrialState.FAIL  # its heartbeat went stale
    retries = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1
    [retry] = retries
    assert retry.state in (TrialState.COMPLETE, TrialState.PRUNED)
    assert retry.params == killed.params and retry.user_attrs["worker"] in ("w1", "w2")
    shared = study_result(study, plan.spec, n_trials=10)
    assert 10 <= shared.n_finished <= 12 and shared.retried == 1
    assert shared.per_worker["victim"].get("failed") == 1
    record = next(r for r in shared.result.trials if r.number == killed.number)
    assert record.state == "failed" and "heartbeat went stale" in record.error
    assert shared.unfinished == []


def test_two_local_workers_on_a_journal_file(workdir):
    journal = str(workdir / "sweeps" / "journal.log")
    p = sweep_params(n_trials=6, step_s=0.2)
    study, plan = new_study(workdir, journal, p)

    exits = run_local_workers(journal, study.study_name, workers=2, timeout_s=120, plan=PLAN)

    assert [e.returncode for e in exits] == [0, 0]
    shared = study_result(study, plan.spec, n_trials=6)
    assert 6 <= shared.n_finished <= 7
    assert set(shared.per_worker) == {"local-0", "local-1"}


def test_the_stage_stops_its_workers_at_the_timeout(workdir):
    journal = str(workdir / "journal.log")
    p = sweep_params(n_trials=50, step_s=0.5)
    study, _ = new_study(workdir, journal, p)
    from housing.sweep import SweepRunError

    # 50 trials of 2 s on two workers need 50 s: the stage stops them at 6 s, and the
    # evidence is in the study (no trial left running, most never started), not in a clock.
    with pytest.raises(SweepRunError, match=r"sweep.timeout_s \(6 s\) passed before the study"):
        run_local_workers(journal, study.study_name, workers=2, timeout_s=6, plan=PLAN)
    # SIGTERM made each worker fail its running trial: none is left RUNNING.
    assert study.get_trials(states=(TrialState.RUNNING,)) == []
    assert len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) < 50


def test_a_worker_of_other_inputs_is_refused_in_one_line(workdir):
    journal = str(workdir / "journal.log")
    study, _ = new_study(workdir, journal, sweep_params())
    (workdir / "params.yaml").write_text(yaml.safe_dump({"sweep": sweep_params(seed=4)}))

    cmd = worker_command(journal, study.study_name, index=0, name="w0", plan=PLAN)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1
    assert f"study {study.study_name} was created from other inputs" in errors[0]
    assert study.trials == []


def test_python_m_housing_sweep_shows_the_worker_command():
    proc = subprocess.run(
        [sys.executable, "-m", "housing.sweep", "worker", "--help"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for flag in ("--storage", "--study", "--index", "--name", "--params", "--plan"):
        assert flag in proc.stdout
