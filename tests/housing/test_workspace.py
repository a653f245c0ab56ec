"""The main workspace, found from the workspace itself and from a `dvc exp run --temp` copy."""

from __future__ import annotations

from pathlib import Path

import pytest

from housing.registry.tracking import DEFAULT_TRACKING_URI, resolve_tracking_uri
from housing.workspace import in_experiment_copy, workspace_root


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpab12cd").mkdir(parents=True)
    (tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "standalone" / "tmpx").mkdir(parents=True)
    return tmp_path / "repo"


def test_the_workspace_is_itself(workspace: Path):
    assert workspace_root(workspace) == workspace.resolve()
    assert not in_experiment_copy(workspace)


@pytest.mark.parametrize("where", ["standalone/tmpx", "tmpab12cd"])  # --temp, the queue
def test_an_experiment_copy_names_the_workspace_that_holds_it(workspace: Path, where: str):
    copy = workspace / ".dvc" / "tmp" / "exps" / where
    assert workspace_root(copy) == workspace.resolve()
    assert workspace_root(copy / "stages") == workspace.resolve()  # a stage's wdir below it
    assert in_experiment_copy(copy)
    (copy / ".dvc" / "tmp").mkdir(parents=True)  # the copy's own .dvc: still the workspace
    assert workspace_root(copy / ".dvc" / "tmp") == workspace.resolve()


def test_a_look_alike_path_without_dvc_is_not_a_copy(tmp_path: Path):
    copy = tmp_path / "x" / ".dvc" / "tmp" / "exps" / "tmp1"
    copy.mkdir(parents=True)
    (tmp_path / "x" / ".dvc").rename(tmp_path / "x" / "dvc")
    assert workspace_root(tmp_path) == tmp_path.resolve()


def test_the_working_directory_decides_not_dvc_root(workspace, monkeypatch):
    """In a --temp copy DVC sets DVC_ROOT to the main workspace (measured with DVC 3.67), so
    only the working directory tells the copy apart."""
    copy = workspace / ".dvc" / "tmp" / "exps" / "standalone" / "tmpx"
    monkeypatch.chdir(copy)
    monkeypatch.setenv("DVC_ROOT", str(workspace))
    assert workspace_root() == workspace.resolve() and in_experiment_copy()


def test_the_exps_folder_itself_is_no_copy(workspace: Path):
    exps = workspace / ".dvc" / "tmp" / "exps"
    assert workspace_root(exps) == exps.resolve()


def test_the_default_registry_of_a_copy_is_the_workspaces(workspace, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(workspace))  # as DVC sets it, in the copy too
    monkeypatch.chdir(workspace)
    assert resolve_tracking_uri() == DEFAULT_TRACKING_URI  # relative, as always
    monkeypatch.chdir(workspace / ".dvc" / "tmp" / "exps" / "standalone" / "tmpx")
    assert resolve_tracking_uri() == f"sqlite:///{workspace.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert resolve_tracking_uri() == "http://mlflow:5000"  # an explicit store is kept
