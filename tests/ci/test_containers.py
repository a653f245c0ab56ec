"""Dockerfiles and the compose file, checked without a Docker engine."""

from __future__ import annotations

import configparser
import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ci_tools import COMPOSE, COMPOSE_SCHEMA, DOCKERFILES, REPO_ROOT, run, tool
from dockerfile_support import instructions as _instructions

ENV_EXAMPLE = REPO_ROOT / ".env.example"
MLFLOW_DIR = REPO_ROOT / "docker" / "mlflow"
# The registry stack's images (not the project's own three, which DOCKERFILES lists).
SERVICE_DOCKERFILES = [MLFLOW_DIR / "Dockerfile", REPO_ROOT / "docker" / "postgres" / "Dockerfile"]


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
    # The base is a build argument (scripts/images passes a local bookworm base where
    # python:3.11-slim cannot be pulled); its default is the upstream slim image.
    assert _instructions(path)[0] == ("ARG", "BASE_IMAGE=python:3.11-slim")
    assert final[0][1].startswith("${BASE_IMAGE}")
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


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def _env_example() -> dict[str, str | None]:
    """.env.example parsed the way podman-compose reads .env (python-dotenv)."""
    from dotenv import dotenv_values

    return dict(dotenv_values(ENV_EXAMPLE))


def _documented() -> set[str]:
    """Every variable .env.example names, set (``NAME=``) or optional (``# NAME=``)."""
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    return set(re.findall(r"^(?:# )?([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def test_compose_wiring() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgres", "mlflow", "registry-users", "api", "app"}
    postgres, mlflow, users = services["postgres"], services["mlflow"], services["registry-users"]
    api, app = services["api"], services["app"]
    assert postgres["image"] == "${POSTGRES_IMAGE:-postgres:15}"
    assert any(v.startswith("postgres-data:") for v in postgres["volumes"])
    assert mlflow["build"]["dockerfile"] == "docker/mlflow/Dockerfile"
    assert mlflow["build"]["args"]["BASE_IMAGE"] == "${BASE_IMAGE:-python:3.11-slim}"
    assert mlflow["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert any(v.startswith("mlflow-artifacts:") for v in mlflow["volumes"])
    assert "healthcheck" in mlflow and "healthcheck" in postgres
    # The one-shot runs the script from the mlflow image once the server is healthy.
    assert users["image"] == mlflow["image"] and "build" not in users
    assert users["command"][:2] == ["python", "/opt/housing/registry_users.py"]
    assert users["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert users["restart"] == "no"
    assert api["build"]["dockerfile"] == "serve/Dockerfile"
    assert api["environment"]["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert api["depends_on"]["mlflow"]["condition"] == "service_healthy"
    assert api["depends_on"]["registry-users"]["condition"] == "service_completed_successfully"
    assert app["build"]["dockerfile"] == "app/Dockerfile"
    assert app["environment"]["API_URL"] == "http://api:8000"
    assert app["depends_on"]["api"]["condition"] == "service_healthy"


def test_compose_publishes_every_port_on_loopback_only() -> None:
    services = _compose()["services"]
    published = {}
    for name, service in services.items():
        for port in service.get("ports", []):
            if isinstance(port, dict):
                assert port.get("host_ip") == "127.0.0.1", f"{name}: {port}"
            else:
                assert str(port).startswith("127.0.0.1:"), f"{name}: {port} is not loopback-only"
            published[name] = port
    assert published == {
        "mlflow": "127.0.0.1:5000:5000",
        "api": "127.0.0.1:8000:8000",
        "app": "127.0.0.1:8501:8501",
    }  # PostgreSQL is reachable from the compose network only
    assert "network_mode" not in json.dumps(services)  # no host networking around the ports


def test_compose_mlflow_is_authenticated_on_postgresql_with_served_artifacts() -> None:
    mlflow = _compose()["services"]["mlflow"]
    command = mlflow["command"]
    args = dict(itertools.pairwise(command))
    assert command[:2] == ["mlflow", "server"]
    assert args["--app-name"] == "basic-auth"
    assert args["--backend-store-uri"].startswith("postgresql+psycopg://mlflow@postgres:5432/")
    assert "--serve-artifacts" in command and args["--artifacts-destination"] == "/mlflow/artifacts"
    env = mlflow["environment"]
    assert env["MLFLOW_AUTH_CONFIG_PATH"] == "/etc/mlflow/basic_auth.ini"
    assert env["PGPASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert env["MLFLOW_AUTH_ADMIN_USERNAME"].startswith("${MLFLOW_ADMIN_USERNAME:?")
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"].startswith("${MLFLOW_ADMIN_PASSWORD:?")
    auth = configparser.ConfigParser()
    auth.read(MLFLOW_DIR / "basic_auth.ini", encoding="utf-8")
    assert auth["mlflow"]["default_permission"] == "READ"
    assert auth["mlflow"]["database_uri"] == "postgresql+psycopg://mlflow@postgres:5432/mlflow_auth"
    assert "admin_password" not in auth["mlflow"] and "admin_username" not in auth["mlflow"]
    # The Dockerfile copies the same config to the path the service names.
    copies = [arg for kw, arg in _instructions(MLFLOW_DIR / "Dockerfile") if kw == "COPY"]
    assert "docker/mlflow/basic_auth.ini /etc/mlflow/basic_auth.ini" in copies


def test_compose_api_reads_the_registry_as_the_read_only_user() -> None:
    services = _compose()["services"]
    api, users = services["api"]["environment"], services["registry-users"]["environment"]
    assert api["MLFLOW_TRACKING_USERNAME"].startswith("${HOUSING_READER_USERNAME:?")
    assert api["MLFLOW_TRACKING_PASSWORD"].startswith("${HOUSING_READER_PASSWORD:?")
    assert api["HOUSING_VERIFY_KEYS"].startswith("${HOUSING_VERIFY_KEYS:?")
    assert "MLFLOW_ADMIN" not in json.dumps(services["api"])
    assert users["MLFLOW_TRACKING_USERNAME"].startswith("${MLFLOW_ADMIN_USERNAME:?")
    assert users["HOUSING_READER_PASSWORD"].startswith("${HOUSING_READER_PASSWORD:?")


def test_compose_holds_no_credential_literals() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    assert not re.search(r"://[^/\s@:]+:[^/\s@]+@", text), "a password inside a URI"
    secret_like = re.compile(r"PASSWORD|SECRET|TOKEN|_KEYS?$|USERNAME")
    for name, service in _compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if secret_like.search(key):
                assert re.fullmatch(r"\$\{[A-Z][A-Z0-9_]*:\?[^}]+\}", str(value)), (
                    f"{name}.{key} must be a required ${{VAR:?message}} reference, not a literal"
                )


def test_every_compose_variable_is_documented_in_env_example() -> None:
    used = {
        (m.group(1), m.group(2) or "")
        for m in re.finditer(r"\$\{([A-Z][A-Z0-9_]*)(:\?|:-)?[^}]*\}", json.dumps(_compose()))
    }
    names = {name for name, _ in used}
    documented = _documented()
    assert names <= documented, f"not in .env.example: {sorted(names - documented)}"
    assert documented <= names, f".env.example documents unused: {sorted(documented - names)}"
    required = {name for name, op in used if op == ":?"}
    optional = {name for name, op in used if op == ":-"}
    assert not required & optional and required | optional == names  # no bare ${VAR}
    values = _env_example()
    assert set(values) == required, "every required variable is set in .env.example"
    assert all(values[name] for name in required)
    pem = values["HOUSING_VERIFY_KEYS"] or ""
    assert pem.startswith("-----BEGIN PUBLIC KEY-----\n") and pem.endswith(
        "-----END PUBLIC KEY-----"
    )
    assert not (set(_env_example()) & {"MLFLOW_TRACKING_PASSWORD", "HOUSING_SIGNING_KEY"})


@pytest.mark.parametrize("path", SERVICE_DOCKERFILES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_registry_dockerfiles_lint_and_policy(path: Path) -> None:
    done = run(tool("hadolint"), "--no-color", "--failure-threshold", "info", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    pairs = _instructions(path)
    assert ("ARG", "BASE_IMAGE=python:3.11-slim") in pairs
    assert [arg for kw, arg in pairs if kw == "FROM"] == ["${BASE_IMAGE}"]
    users = [arg for kw, arg in pairs if kw == "USER"]
    assert users and re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", users[-1]), "numeric non-root user"
    cmd = [arg for kw, arg in pairs if kw == "CMD"]
    assert len(cmd) == 1 and isinstance(json.loads(cmd[0]), list), "CMD in exec form"
    assert any(kw == "HEALTHCHECK" for kw, _ in pairs) or path.parent.name == "mlflow"


def test_mlflow_image_requirements_are_uv_lock_versions() -> None:
    import tomllib

    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text(encoding="utf-8"))
    locked = {pkg["name"]: pkg["version"] for pkg in lock["package"] if "version" in pkg}
    pins = {}
    for line in (MLFLOW_DIR / "requirements.txt").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.lower()] = version
    assert {"mlflow", "flask-wtf", "psycopg", "psycopg-binary"} <= set(pins)
    drift = {name: (v, locked.get(name)) for name, v in pins.items() if locked.get(name) != v}
    assert drift == {}, "docker/mlflow/requirements.txt differs from uv.lock (name: pin, lock)"


def test_dockerignore_keeps_secrets_and_data_out() -> None:
    ignored = set((REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").split())
    assert {".git", ".venv", ".env", ".dvc/config.local", ".dvc/cache", "data/"} <= ignored
