"""The main workspace, found from the workspace itself and from a `dvc exp run --temp` copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from housing.registry.tracking import DEFAULT_TRACKING_URI, resolve_tracking_uri
from housing.workspace import in_experiment_copy, workspace_root


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpab12cd").mkdir(parents=True)
    return tmp_path / "repo"


def test_the_workspace_is_itself(workspace: Path):
    assert workspace_root(workspace) == workspace.resolve()
    assert not in_experiment_copy(workspace)


def test_an_experiment_copy_names_the_workspace_that_holds_it(workspace: Path):
    copy = workspace / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    assert workspace_root(copy) == workspace.resolve()
    assert workspace_root(copy / "stages") == workspace.resolve()  # a stage's wdir below it
    assert in_experiment_copy(copy)


def test_a_look_alike_path_without_dvc_is_not_a_copy(tmp_path: Path):
    copy = tmp_path / "x" / ".dvc" / "tmp" / "exps" / "tmp1"
    copy.mkdir(parents=True)
    (tmp_path / "x" / ".dvc").rename(tmp_path / "x" / "dvc")
    assert workspace_root(tmp_path) == tmp_path.resolve()


def test_dvc_root_wins_over_the_working_directory(workspace, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_ROOT", str(workspace / ".dvc" / "tmp" / "exps" / "tmpab12cd"))
    assert workspace_root() == workspace.resolve()


def test_the_default_registry_of_a_copy_is_the_workspaces(workspace, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    monkeypatch.chdir(workspace)
    assert resolve_tracking_uri() == DEFAULT_TRACKING_URI  # relative, as always
    monkeypatch.chdir(workspace / ".dvc" / "tmp" / "exps" / "tmpab12cd")
    assert resolve_tracking_uri() == f"sqlite:///{workspace.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert resolve_tracking_uri() == "http://mlflow:5000"  # an explicit store is kept
