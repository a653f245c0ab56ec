"""Fixtures for the DVC-remote tests: a GCS emulator and a pipeline pushed to it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pipeline_support import copy_workspace, dvc, git
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
    """A copy of the pipeline run, its signed champion `dvc add`-ed and committed (as
    docs/governance.md tells a team to publish it), pushed with its run cache to the
    emulator's `dvc-main`."""
    repo = copy_workspace(pipeline_repo, tmp_path_factory.mktemp("origin") / "repo")
    dvc(repo, "add", "champion", mirror=mirror_csv, env=DVC_ENV)
    git(repo, "add", "champion.dvc", ".gitignore")
    git(repo, "commit", "-q", "-m", "the signed champion")
    create_bucket(remote_emulator, "dvc-main")
    point_remote(repo, remote_emulator.endpoint, "dvc-main")
    dvc(repo, "push", "--run-cache", mirror=mirror_csv, env=DVC_ENV)
    return Pushed(repo, "dvc-main", remote_emulator)
