"""The DVC pipeline in a copy of the ``pipeline_repo`` workspace: nothing re-runs when
nothing changed.

Elsewhere, not here twice: every stage re-executed reproduces the committed dvc.lock byte for
byte with no thread variables set, and git stays clean (tests/pipeline/test_pipeline_full.py,
the README's make pipeline on a copy without outputs); a parameter change re-runs exactly
its stage and those below it (tests/remote/test_remote_experiments.py, the README's
`dvc exp run` and a featurize change); a sweep on two workers, and its resumption
(tests/stages/test_stage_sweep.py, the real stage with `sweep.workers: 2`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
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
