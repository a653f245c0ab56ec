"""Fixtures for the DVC-remote tests: a GCS emulator and a pipeline pushed to it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pipeline_support import VENV_BIN, copy_workspace, git, pipeline_env, promotion_keys
from remote_support import DVC_ENV, create_bucket, point_remote, running_emulator


@dataclass(frozen=True)
class Pushed:
    """A pipeline workspace whose outputs and run cache were pushed to ``bucket``."""

    repo: Path
    bucket: str
    emulator: Any

    @property
    def endpoint(self) -> str:
        return self.emulator.endpoint


@pytest.fixture(scope="session")
def remote_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """`gcp-storage-emulator` for the session (its own, so stopping others never hits it)."""
    os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"
    with running_emulator(tmp_path_factory.mktemp("gcs") / "emulator.log") as emulator:
        yield emulator


@pytest.fixture(scope="session")
def pushed(
    pipeline_repo: Path,
    remote_emulator: Any,
    mirror_csv: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Pushed:
    """A copy of the pipeline run released as CI's main does: the test run's key stands for
    the team's (its public half committed as keys/team.pub, its private half signed the
    shared build); `make dvc-push` pushed outputs and run cache to the emulator's
    `dvc-main`, then `make release` registered models/ again (held: the same predictions as
    the champion), exported the champion, and published it (verified with keys/team.pub,
    pushed, champion.dvc committed). Both with ``-o install`` on the test run's virtualenv
    (tests/make_serve_support.py says why)."""
    repo = copy_workspace(pipeline_repo, tmp_path_factory.mktemp("origin") / "repo")
    shutil.copy2(promotion_keys()[1], repo / "keys" / "team.pub")
    git(repo, "add", "keys/team.pub")
    git(repo, "commit", "-q", "-m", "The team's verification key")
    create_bucket(remote_emulator, "dvc-main")
    point_remote(repo, remote_emulator.endpoint, "dvc-main")
    release_env = {**DVC_ENV, "MLFLOW_TRACKING_URI": f"sqlite:///{repo / 'mlflow.db'}"}
    for target in ("dvc-push", "release"):
        done = subprocess.run(
            ["make", "-o", "install", target, f"BIN={VENV_BIN}"],
            cwd=repo,
            env=pipeline_env(repo, mirror_csv, release_env),
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, f"make {target}\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    assert ": held as challenger. Held: the candidate makes the same predictions" in done.stdout
    assert "Publish the champion v" in git(repo, "log", "-1", "--format=%s")
    return Pushed(repo, "dvc-main", remote_emulator)
