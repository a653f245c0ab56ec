"""Per-image requirements files are exactly what uv.lock exports, and the API's stays lean.

requirements/pipeline-libraries.txt, the pinned libraries that compute the pipeline's
outputs (a dvc.yaml dep of the stages they compute), is exported with them and so is
checked the same way.
"""

from __future__ import annotations

import re
import shutil
import tomllib
from pathlib import Path

import pytest
from ci_tools import REPO_ROOT, run

from scripts.pipeline_libraries import AFFECTS_OUTPUTS, select_pins

LIBRARIES = "requirements/pipeline-libraries.txt"
EXPORTS = [
    "serve/requirements.txt",
    "serve/requirements-wandb.txt",
    "app/requirements.txt",
    "requirements/pipeline.txt",
    LIBRARIES,
]


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


# What the API never imports: the training stack, the model-fitting stack, the gcsfs tree.
NOT_IN_API = {
    "dvc", "dvc-gs", "optuna", "mlflow", "mlflow-skinny", "matplotlib",
    "scikit-learn", "pandas", "pyarrow", "skops", "scipy", "gcsfs", "aiohttp", "grpcio",
}  # fmt: skip


def test_api_image_has_no_training_stack() -> None:
    names = _names(REPO_ROOT / "serve/requirements.txt")
    assert {"fastapi", "uvicorn", "numpy", "lightgbm", "google-auth", "requests"} <= names
    assert not names & (NOT_IN_API | {"wandb"})


def test_the_api_with_wandb_adds_only_wandb_and_its_tree() -> None:
    names = _names(REPO_ROOT / "serve/requirements-wandb.txt")
    assert "wandb" in names and _names(REPO_ROOT / "serve/requirements.txt") < names
    assert not names & NOT_IN_API


def test_app_image_has_no_model_stack() -> None:
    names = _names(REPO_ROOT / "app/requirements.txt")
    assert {"streamlit", "httpx", "pydeck"} <= names
    assert not names & {"scikit-learn", "lightgbm", "skops", "mlflow", "dvc", "fastapi"}


def test_pipeline_image_has_dvc_with_gcs() -> None:
    names = _names(REPO_ROOT / "requirements/pipeline.txt")
    assert {"dvc", "dvc-gs", "mlflow", "optuna", "lightgbm"} <= names


def test_pipeline_libraries_are_the_sorted_uv_lock_pins() -> None:
    """Read against uv.lock itself, not through uv: the exact version of each listed library."""
    lock = {
        p["name"]: p["version"]
        for p in tomllib.loads((REPO_ROOT / "uv.lock").read_text())["package"]
    }
    lines = [
        line
        for line in (REPO_ROOT / LIBRARIES).read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    assert lines == sorted(lines)
    assert lines == [f"{name}=={lock[name]}" for name in sorted(AFFECTS_OUTPUTS)]
    assert {"numpy", "scipy", "pandas", "pyarrow", "scikit-learn", "lightgbm", "skops"} <= set(
        AFFECTS_OUTPUTS
    )
    assert {"optuna", "threadpoolctl"} <= set(AFFECTS_OUTPUTS)


def test_pipeline_libraries_export_fails_on_a_library_the_lock_lost() -> None:
    exported = "numpy==2.0.0\n    # via pandas\npandas==2.2.0 ; python_full_version < '3.12'\n"
    assert select_pins(exported, {"pandas", "numpy"}) == [
        "numpy==2.0.0",
        "pandas==2.2.0 ; python_full_version < '3.12'",
    ]
    with pytest.raises(ValueError, match="lightgbm"):
        select_pins(exported, {"numpy", "lightgbm"})
