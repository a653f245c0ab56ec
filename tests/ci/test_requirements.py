"""Per-image requirements files are exactly what uv.lock exports, and the API's stays lean."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from ci_tools import REPO_ROOT, run

EXPORTS = ["serve/requirements.txt", "app/requirements.txt", "requirements/pipeline.txt"]


def _names(path: Path) -> set[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return {
        re.split(r"[=<>;\[ ]", line, maxsplit=1)[0].lower()
        for line in lines
        if line and not line.startswith((" ", "#"))
    }


@pytest.fixture(scope="module")
def fresh_export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert shutil.which("uv"), "uv is needed to export from uv.lock"
    out = tmp_path_factory.mktemp("export")
    done = run("bash", str(REPO_ROOT / "scripts/export_requirements.sh"), str(out))
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.parametrize("name", EXPORTS)
def test_committed_requirements_equal_a_fresh_export(fresh_export: Path, name: str) -> None:
    committed = (REPO_ROOT / name).read_text(encoding="utf-8")
    assert committed == (fresh_export / name).read_text(encoding="utf-8"), (
        f"{name} drifted from uv.lock: run scripts/export_requirements.sh"
    )


def test_api_image_has_no_training_stack() -> None:
    names = _names(REPO_ROOT / "serve/requirements.txt")
    assert {"fastapi", "uvicorn", "mlflow-skinny", "lightgbm", "skops"} <= names
    assert not names & {"dvc", "dvc-gs", "optuna", "mlflow", "matplotlib"}


def test_app_image_has_no_model_stack() -> None:
    names = _names(REPO_ROOT / "app/requirements.txt")
    assert {"streamlit", "httpx", "pydeck"} <= names
    assert not names & {"scikit-learn", "lightgbm", "skops", "mlflow", "dvc", "fastapi"}


def test_pipeline_image_has_dvc_with_gcs() -> None:
    names = _names(REPO_ROOT / "requirements/pipeline.txt")
    assert {"dvc", "dvc-gs", "mlflow", "optuna", "lightgbm"} <= names
