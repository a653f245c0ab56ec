"""The DVC pipeline in copies of the ``pipeline_repo`` workspace: nothing re-runs when nothing
changed, and an experiment scales out to two sweep workers.

Elsewhere, not here twice: every stage re-executed reproduces the committed dvc.lock byte for
byte with no thread variables set, and git stays clean (tests/pipeline/test_pipeline_full.py,
the README's make pipeline on a copy without outputs); a parameter change re-runs exactly
its stage and those below it (tests/remote/test_remote_experiments.py, the README's
`dvc exp run` and a featurize change).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from pipeline_support import copy_workspace, dvc, ran_stages
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
