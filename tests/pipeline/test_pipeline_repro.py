"""The DVC pipeline in copies of the ``pipeline_repo`` workspace: caching, determinism, params."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from pipeline_support import copy_workspace, dvc, lock_outs, ran_stages
from readme_support import readme_argv

pytestmark = pytest.mark.slow

STAGES = ["download", "split", "preprocess", "featurize", "select", "sweep", "register"]


def workspace(pipeline_repo: Path, dest: Path) -> Path:
    """A private copy of the pipeline workspace whose registry writes stay inside the copy.

    MLflow stores each experiment's artifact location as an absolute URI, so a plain copy's
    new runs would write artifacts into the original workspace; point them at the copy.
    """
    repo = copy_workspace(pipeline_repo, dest)
    with sqlite3.connect(repo / "mlflow.db") as db:
        db.execute(
            "UPDATE experiments SET artifact_location = replace(artifact_location, ?, ?)",
            (pipeline_repo.as_uri(), repo.as_uri()),
        )
    return repo


def test_repro_again_runs_nothing(pipeline_repo, mirror_csv, tmp_path):
    """The README's `dvc repro` on an up-to-date workspace: every stage says it is skipped."""
    repo = workspace(pipeline_repo, tmp_path / "repo")
    program, *args = readme_argv("dvc repro")
    assert program == "dvc"
    proc = dvc(repo, *args, mirror=mirror_csv)
    assert ran_stages(proc.stdout) == []
    for stage in STAGES:
        assert f"Stage '{stage}' didn't change, skipping" in proc.stdout
    status = dvc(repo, "status", mirror=mirror_csv)
    assert "Data and pipelines are up to date" in status.stdout


def test_forced_repro_rebuilds_identical_outputs(pipeline_repo, mirror_csv, tmp_path):
    """`dvc repro --force` as typed in a shell with no thread variables (pipeline_env): every
    output's md5, and so dvc.lock's bytes, come back the same; the registration's ids are
    not an output (issue 23: a run leaves git clean)."""
    repo = workspace(pipeline_repo, tmp_path / "repo")
    before, lock = lock_outs(repo), (repo / "dvc.lock").read_bytes()
    proc = dvc(repo, "repro", "--force", mirror=mirror_csv)
    assert ran_stages(proc.stdout) == STAGES
    after = lock_outs(repo)
    assert set(after) == set(before)
    changed = {path for path in before if before[path] != after[path]}
    assert not changed
    assert (repo / "dvc.lock").read_bytes() == lock
    for out in ("data/raw/housing.csv", "data/contract.json", "models/model.skops"):
        assert out in before


@pytest.mark.parametrize(
    ("param", "expected"),
    [
        # sweep.n_trials, which re-runs sweep and register only: the README's own
        # `dvc exp run --set-param sweep.n_trials=...` in tests/remote/test_remote_experiments.py
        ("featurize.gamma=0.5", ["featurize", "select", "sweep", "register"]),
    ],
)
def test_a_param_change_reruns_only_its_stage_and_descendants(
    pipeline_repo, mirror_csv, tmp_path, param, expected
):
    repo = workspace(pipeline_repo, tmp_path / "repo")
    proc = dvc(repo, "exp", "run", "--set-param", param, mirror=mirror_csv)
    assert ran_stages(proc.stdout) == expected
    assert not {"download", "split", "preprocess"} & set(ran_stages(proc.stdout))


def test_an_experiment_with_two_sweep_workers_runs_to_completion(
    pipeline_repo, mirror_csv, tmp_path
):
    """Issue 14's scale-out inside one experiment: two local workers share a journal file."""
    repo = workspace(pipeline_repo, tmp_path / "repo")
    proc = dvc(repo, "exp", "run", "--set-param", "sweep.workers=2", mirror=mirror_csv)
    assert ran_stages(proc.stdout) == ["sweep", "register"]
    summary = json.loads((repo / "reports/sweep/summary.json").read_text())
    n_trials = yaml.safe_load((repo / "params.yaml").read_text())["sweep"]["n_trials"]
    assert summary["workers"] == 2 and summary["storage"] == "journal"
    assert n_trials <= summary["n_finished"] <= n_trials + 1  # overshoot <= workers - 1
    assert set(summary["per_worker"]) <= {"local-0", "local-1"}
    assert (repo / ".sweep/journal.log").is_file()
    best = yaml.safe_load((repo / "models/best_params.yaml").read_text())
    assert best["family"] and best["params"]
    assert (repo / "models/serving").is_dir()
