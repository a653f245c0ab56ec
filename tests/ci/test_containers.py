"""Dockerfiles and the compose file, checked without a Docker engine."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from ci_tools import COMPOSE, COMPOSE_SCHEMA, DOCKERFILES, REPO_ROOT, run, tool


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def _final_stage(path: Path) -> list[tuple[str, str]]:
    pairs = _instructions(path)
    last_from = max(i for i, (kw, _) in enumerate(pairs) if kw == "FROM")
    return pairs[last_from:]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_hadolint_passes(path: Path) -> None:
    done = run(tool("hadolint"), "--no-color", "--failure-threshold", "info", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_dockerfile_policy(path: Path) -> None:
    final = _final_stage(path)
    assert final[0][1].startswith("python:3.11-slim")
    users = [arg for kw, arg in final if kw == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}, "run as a non-root user"
    cmd = [arg for kw, arg in final if kw == "CMD"]
    assert len(cmd) == 1 and isinstance(json.loads(cmd[0]), list), "CMD in exec form"
    # Dependency layer before code layers: requirements are installed before code is copied.
    pairs = _instructions(path)
    req = next(i for i, (kw, arg) in enumerate(pairs) if kw == "COPY" and "requirements" in arg)
    code = [
        i
        for i, (kw, arg) in enumerate(pairs)
        if kw == "COPY"
        and "requirements" not in arg
        and re.search(r"\b(src|serve|app|stages)/", arg)
    ]
    assert code and req < min(code)


@pytest.mark.parametrize(
    ("path", "command", "port", "probe"),
    [
        ("serve/Dockerfile", ["python", "-m", "serve"], "8000", "/health"),
        ("app/Dockerfile", ["python", "-m", "app"], "8501", "/_stcore/health"),
    ],
)
def test_service_images_healthcheck_on_port(path: str, command, port: str, probe: str) -> None:
    final = _final_stage(REPO_ROOT / path)
    assert json.loads(next(arg for kw, arg in final if kw == "CMD")) == command
    env = " ".join(arg for kw, arg in final if kw == "ENV")
    assert f"PORT={port}" in env and "HOST=0.0.0.0" in env
    health = next(arg for kw, arg in final if kw == "HEALTHCHECK")
    assert "os.environ.get('PORT'" in health and probe in health and "curl" not in health


def test_pipeline_image_runs_dvc_repro() -> None:
    final = _final_stage(REPO_ROOT / "Dockerfile")
    assert json.loads(next(arg for kw, arg in final if kw == "CMD")) == ["dvc", "repro"]
    copies = [arg for kw, arg in _instructions(REPO_ROOT / "Dockerfile") if kw == "COPY"]
    assert any("requirements/pipeline.txt" in arg for arg in copies)


def test_compose_matches_the_compose_spec_schema() -> None:
    done = run(tool("check-jsonschema"), "--schemafile", str(COMPOSE_SCHEMA), str(COMPOSE))
    assert done.returncode == 0, done.stdout + done.stderr


def test_compose_wiring() -> None:
    services = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    mlflow, api, app = services["mlflow"], services["api"], services["app"]
    assert mlflow["image"] == "ghcr.io/mlflow/mlflow:v3.17.2"
    command = " ".join(mlflow["command"])
    assert "--backend-store-uri sqlite:////mlflow/mlflow.db" in command
    assert any(v.endswith(":/mlflow") for v in mlflow["volumes"])
    assert "healthcheck" in mlflow
    assert api["build"]["dockerfile"] == "serve/Dockerfile"
    assert api["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert api["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert app["build"]["dockerfile"] == "app/Dockerfile"
    assert app["environment"]["API_URL"] == "http://api:8000"
    assert app["depends_on"]["api"]["condition"] == "service_healthy"


def test_dockerignore_keeps_secrets_and_data_out() -> None:
    ignored = set((REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".git", ".venv", ".env", ".dvc/config.local", ".dvc/cache", "data/"} <= ignored
