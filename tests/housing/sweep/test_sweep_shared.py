"""A shared study in one process: storage parsing, the study's name, the worker loop, results.

The worker loop runs here on Optuna's in-memory storage with the cheap synthetic plan; the
multi-process runs on real storages are in test_sweep_workers.py.
"""

from __future__ import annotations

import json

import optuna
import pytest
from synthetic_plan import plan as synthetic

from housing.sweep import SweepRunError, parse_sweep_config
from housing.sweep.inputs import StudyPlan, inputs_digest, study_name
from housing.sweep.shared import create_study, study_result
from housing.sweep.storage import (
    JOURNAL,
    MEMORY,
    POSTGRESQL,
    SQLITE,
    StorageError,
    open_storage,
    parse_storage,
)
from housing.sweep.worker import StudyMismatchError, load_worker_study, run_worker

CONFIG = {"method": "random", "metric": {"name": "score", "goal": "minimize"}}


def params(**over) -> dict:
    return {"seed": 3, "n_trials": 12, "config": CONFIG, "step_s": 0.0, **over}


# -- sweep.storage ---------------------------------------------------------------------------


def test_storage_kinds():
    assert parse_storage("").kind == MEMORY and not parse_storage("").shared
    assert parse_storage(".sweep/journal.log") == parse_storage(" .sweep/journal.log ")
    assert parse_storage(".sweep/journal.log").kind == JOURNAL
    assert parse_storage("sqlite:///one.db").kind == SQLITE
    pg = parse_storage("postgresql://sweep@db.example:5432/optuna", workers=4)
    # psycopg2 (SQLAlchemy's default for a bare postgresql://) is not installed: psycopg 3.
    assert (pg.kind, pg.target) == (POSTGRESQL, "postgresql+psycopg://sweep@db.example:5432/optuna")
    assert pg.shown == "postgresql+psycopg://***@db.example:5432/optuna"


@pytest.mark.parametrize(
    ("value", "workers", "message"),
    [
        ("redis://localhost:6379", 1, "unsupported scheme 'redis' in 'redis://localhost:6379'"),
        ("mysql://u@h/db", 1, "unsupported scheme 'mysql'"),
        ("sqlite:///shared.db", 2, "SQLite cannot be shared by 2 workers"),
        ("sqlite:///shared.db", 2, "'database is locked'"),
        ("", -1, "sweep.workers must be a non-negative integer, got -1"),
        ("", 0, r"sweep.workers: 0 \(the stage only coordinates.*needs a shared sweep.storage"),
    ],
)
def test_bad_storage_is_one_clear_line(value, workers, message):
    with pytest.raises(StorageError, match=message) as caught:
        parse_storage(value, workers=workers)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://sweep:hunter2secret@db:5432/optuna",
        "postgresql+psycopg://sweep@db:5432/optuna?password=hunter2secret",
    ],
)
def test_a_password_in_the_url_is_refused_and_never_shown(url):
    with pytest.raises(StorageError, match="holds a password; remove it and set PGPASSWORD") as e:
        parse_storage(url)
    assert "hunter2secret" not in str(e.value)


def test_an_unreachable_database_names_what_failed():
    from postgres_support import free_port

    port = free_port()
    storage = parse_storage(f"postgresql+psycopg://sweep@127.0.0.1:{port}/optuna")
    with pytest.raises(StorageError) as caught:
        open_storage(storage)
    line = str(caught.value)
    assert line.startswith(
        f"sweep.storage: cannot reach the database at postgresql+psycopg://***@127.0.0.1:{port}/"
    )
    assert "Connection refused" in line or "connection failed" in line
    assert "\n" not in line


# -- the study's name ------------------------------------------------------------------------


def test_the_study_is_named_by_its_inputs(tmp_path):
    data = (tmp_path / "train.parquet", tmp_path / "choice.json")
    for path in data:
        path.write_bytes(b"rows")
    pins = tmp_path / "missing-pins.txt"

    def digest(**over) -> str:
        return inputs_digest(params(**over), data=data, pins=pins)

    base = digest()
    assert study_name(base) == f"housing-sweep-{base[:16]}"
    # How to run it does not change what is searched: the same study resumes.
    assert digest(n_trials=300, workers=4, storage="x.log", timeout_s=1, heartbeat_s=3) == base
    # What is searched does.
    assert digest(seed=4) != base
    assert digest(config={**CONFIG, "method": "bayes"}) != base
    data[0].write_bytes(b"other rows")
    assert digest() != base


# -- the worker loop -------------------------------------------------------------------------


def _memory_study(p: dict, plan: StudyPlan) -> optuna.Study:
    return create_study(optuna.storages.InMemoryStorage(), plan, n_trials=p["n_trials"])


def test_a_worker_stops_at_n_finished_and_duplicates_are_counted():
    p = params()
    plan = synthetic(p)
    study = _memory_study(p, plan)
    stats = run_worker(study, plan, name="w0")
    shared = study_result(study, plan.spec, n_trials=12)
    assert shared.n_finished == 12 and shared.overshoot == 0  # one worker never overshoots
    assert stats.states["complete"] + stats.states["pruned"] == 12
    # 12 trials on 8 points: at least 4 repeat one.
    unique = {json.dumps(t.params, sort_keys=True) for t in shared.result.trials}
    assert shared.duplicates == 12 - len(unique) >= 4
    assert shared.per_worker == {"w0": {"complete": 12}}
    assert {t.worker for t in shared.result.trials} == {"w0"}
    assert shared.result.best_value == 0.0 and shared.result.best_params["x"] == 2
    frame = shared.result.history_frame()
    assert list(frame.columns[:7]) == [
        "trial", "value", "best_so_far", "state", "n_steps", "duration_s", "worker",
    ]  # fmt: skip

    # A second worker on a study that already has its trials runs none.
    again = run_worker(study, plan, name="w1")
    assert sum(again.states.values()) == 0
    assert len(study.trials) == 12


def test_a_rerun_resumes_and_counts_the_finished_trials():
    p = params(n_trials=5)
    plan = synthetic(p)
    storage = optuna.storages.InMemoryStorage()
    study = create_study(storage, plan, n_trials=5)
    run_worker(study, plan, name="w0")
    # More trials asked of the same inputs: the same study, 3 more trials.
    resumed = create_study(storage, plan, n_trials=8)
    assert resumed.study_name == study.study_name == study_name(plan.digest)
    run_worker(load_worker_study(storage, study.study_name, plan, 1), plan, name="w1")
    shared = study_result(resumed, plan.spec, n_trials=8)
    assert shared.n_finished == 8
    assert shared.per_worker == {"w0": {"complete": 5}, "w1": {"complete": 3}}


def test_a_worker_refuses_a_study_of_other_inputs():
    p = params()
    plan = synthetic(p)
    storage = optuna.storages.InMemoryStorage()
    study = create_study(storage, plan, n_trials=12)
    other = synthetic(params(seed=99))
    with pytest.raises(StudyMismatchError, match=f"study {study.study_name} was created from"):
        load_worker_study(storage, study.study_name, other, 0)
    with pytest.raises(SweepRunError, match="no study nope in this storage"):
        load_worker_study(storage, "nope", plan, 0)


def test_each_worker_is_seeded_by_its_index_deterministically():
    p = params(n_trials=4, config={**CONFIG, "method": "bayes"})
    plan = synthetic(p)

    def first_trials(index: int) -> list[dict]:
        storage = optuna.storages.InMemoryStorage()
        create_study(storage, plan, n_trials=4)
        study = load_worker_study(storage, study_name(plan.digest), plan, index)
        assert isinstance(study.sampler, optuna.samplers.TPESampler)
        run_worker(study, plan, name=f"w{index}")
        return [t.params for t in study.trials]

    assert first_trials(0) == first_trials(0)
    assert first_trials(0) != first_trials(1)


def test_an_objective_that_always_fails_stops_the_workers():
    p = params(n_trials=3)
    spec = parse_sweep_config({**CONFIG, "parameters": {"x": {"min": 0.0, "max": 1.0}}})

    def broken(params, reporter):
        raise ValueError("bad data")

    plan = StudyPlan(spec=spec, objective=broken, seed=0, digest="d" * 64)
    study = _memory_study(p, plan)
    with pytest.raises(SweepRunError, match="3 trials failed in the objective before 3 finished"):
        run_worker(study, plan, name="w0")
    assert [t.user_attrs["error"] for t in study.trials] == ["ValueError: bad data"] * 3


def test_the_digest_hashes_the_reports_the_objective_reads():
    from housing import choices
    from housing.sweep.inputs import DATA, TRAIN

    assert DATA == (
        TRAIN,
        choices.IMPUTATION_REPORT,
        choices.FEATURES_REPORT,
        choices.LEADERBOARD,
    )
