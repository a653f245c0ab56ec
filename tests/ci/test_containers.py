"""Dockerfiles and the compose file, checked without a Docker engine."""

from __future__ import annotations

import configparser
import itertools
import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from ci_tools import COMPOSE, COMPOSE_SCHEMA, DOCKERFILES, REPO_ROOT, run, tool
from dockerfile_support import instructions as _instructions

ENV_EXAMPLE = REPO_ROOT / ".env.example"
MLFLOW_DIR = REPO_ROOT / "docker" / "mlflow"
POSTGRES_DIR = REPO_ROOT / "docker" / "postgres"
PROMETHEUS_DIR = REPO_ROOT / "docker" / "prometheus"
PROMETHEUS_CONFIG = REPO_ROOT / "deploy" / "prometheus"
# The stack's service images (not the project's own three, which DOCKERFILES lists).
SERVICE_DOCKERFILES = [
    MLFLOW_DIR / "Dockerfile",
    POSTGRES_DIR / "Dockerfile",
    PROMETHEUS_DIR / "Dockerfile",
]


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
    assert set(services) == {
        "postgres",
        "mlflow",
        "registry-users",
        "api",
        "app",
        "sweep-worker",
        "prometheus",
    }
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


def test_compose_sweep_worker_scales_on_the_pipeline_image() -> None:
    services = _compose()["services"]
    worker = services["sweep-worker"]
    # `--scale sweep-worker=N`: N containers cannot share a fixed name or a published port.
    assert "container_name" not in worker and "ports" not in worker
    assert "network_mode" not in worker
    # The pipeline image: the root Dockerfile, which installs the project's console scripts
    # and requirements/pipeline.txt (the pipeline extra, psycopg included).
    assert worker["build"] == {
        "context": ".",
        "dockerfile": "Dockerfile",
        "args": {"BASE_IMAGE": "${BASE_IMAGE:-python:3.11-slim}"},
    }
    assert worker["image"] == "housing-pipeline:local"
    runs = " ".join(arg for kw, arg in _instructions(REPO_ROOT / "Dockerfile") if kw == "RUN")
    assert "uv pip install --no-deps --prefix /opt/project ." in runs
    pipeline_pins = (REPO_ROOT / "requirements" / "pipeline.txt").read_text(encoding="utf-8")
    assert re.search(r"^psycopg-binary==", pipeline_pins, flags=re.MULTILINE)
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert scripts["project"]["scripts"]["housing-sweep"] == "housing.sweep.cli:main"
    command = worker["command"]
    assert command[:2] == ["housing-sweep", "worker"]
    options = dict(zip(command[2::2], command[3::2], strict=True))
    assert set(options) == {"--storage", "--study"}
    url = urlsplit(options["--storage"])
    assert url.scheme == "postgresql+psycopg" and url.password is None
    assert (url.username, url.hostname, url.port, url.path) == (
        "optuna",
        "postgres",
        5432,
        "/optuna",
    )
    assert options["--study"].startswith("${SWEEP_STUDY:?")
    # Its own database user: the password PostgreSQL's init script gives `optuna`, as PGPASSWORD.
    assert worker["environment"]["PGPASSWORD"].startswith("${OPTUNA_DB_PASSWORD:?")
    postgres = services["postgres"]["environment"]
    assert postgres["OPTUNA_DB_PASSWORD"] == worker["environment"]["PGPASSWORD"]
    assert "POSTGRES_PASSWORD" not in json.dumps(worker) and "MLFLOW" not in json.dumps(worker)
    assert worker["depends_on"]["postgres"]["condition"] == "service_healthy"
    # Started when named: a bare `up` runs the registry stack only.
    assert worker["profiles"] == ["sweep"]
    assert any(v.startswith(".:/workspace") and v.endswith(":ro") for v in worker["volumes"])


def test_postgres_init_script_creates_optuna_without_a_password_literal() -> None:
    script = (POSTGRES_DIR / "initdb" / "20-optuna.sql").read_text(encoding="utf-8")
    assert "\\getenv optuna_password OPTUNA_DB_PASSWORD" in script
    assert "CREATE ROLE optuna LOGIN PASSWORD :'optuna_password';" in script
    assert "CREATE DATABASE optuna OWNER optuna;" in script
    assert not re.search(r"PASSWORD\s+'", script), "a password literal"
    # Run after 10-mlflow-auth.sql, whose database it closes to other users.
    assert sorted(p.name for p in (POSTGRES_DIR / "initdb").iterdir()) == [
        "10-mlflow-auth.sql",
        "20-optuna.sql",
    ]


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
    # The host port is a setting (default the service's own), so a busy host port can move.
    assert published == {
        "mlflow": "127.0.0.1:${MLFLOW_PORT:-5000}:5000",
        "api": "127.0.0.1:${API_PORT:-8000}:8000",
        "app": "127.0.0.1:${APP_PORT:-8501}:8501",
        "prometheus": "127.0.0.1:${PROMETHEUS_PORT:-9090}:9090",
    }  # PostgreSQL is reachable from the compose network only
    assert "network_mode" not in json.dumps(services)  # no host networking around the ports


def test_compose_prometheus_scrapes_the_api_with_the_checked_rules() -> None:
    """The service reads deploy/prometheus/ (what tests/deploy checks with promtool), on the
    path its command names, and that configuration scrapes the api service on its PORT."""
    services = _compose()["services"]
    prometheus, api = services["prometheus"], services["api"]
    assert prometheus["image"] == "${PROMETHEUS_IMAGE:-prom/prometheus:v2.42.0}"
    assert "build" not in prometheus and "depends_on" not in prometheus  # it must see api down
    options = dict(arg.removeprefix("--").split("=", 1) for arg in prometheus["command"])
    assert options == {
        "config.file": "/etc/prometheus/prometheus.yml",
        "storage.tsdb.path": "/prometheus",
    }
    mounts = {v.split(":")[1]: v for v in prometheus["volumes"]}
    assert mounts["/etc/prometheus"] == "./deploy/prometheus:/etc/prometheus:ro"
    assert mounts["/prometheus"] == "prometheus-data:/prometheus"
    assert "prometheus-data" in _compose()["volumes"]
    config = yaml.safe_load((PROMETHEUS_CONFIG / "prometheus.yml").read_text(encoding="utf-8"))
    for rules in config["rule_files"]:
        assert (PROMETHEUS_CONFIG / rules).is_file(), f"{rules} is not beside prometheus.yml"
    [job] = config["scrape_configs"]
    [static] = job["static_configs"]
    assert static["targets"] == [f"api:{api['environment']['PORT']}"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    # The Debian-package image has the official image's contract (entrypoint, paths, user).
    pairs = _instructions(PROMETHEUS_DIR / "Dockerfile")
    entry = json.loads(next(arg for kw, arg in pairs if kw == "ENTRYPOINT"))
    assert entry == ["/usr/bin/prometheus"]
    cmd = json.loads(next(arg for kw, arg in pairs if kw == "CMD"))
    assert cmd == [f"--{k}={v}" for k, v in options.items()]
    assert [arg for kw, arg in pairs if kw == "USER"] == ["65534:65534"]
    copies = [arg for kw, arg in pairs if kw == "COPY"]
    assert copies == [
        "deploy/prometheus/prometheus.yml deploy/prometheus/alerts.yml /etc/prometheus/"
    ]


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


# --- docker/postgres's entrypoint and init scripts on Debian's PostgreSQL, without an engine ---

PG_BIN = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
PG_START_TIMEOUT_S = 120.0


def _pg_tool(name: str) -> str:
    found = next((str(d / name) for d in PG_BIN if (d / name).is_file()), shutil.which(name))
    assert found, f"PostgreSQL's {name} not found: apt-get install -y postgresql (make system-deps)"
    return found


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def _entrypoint(root: Path, port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    """The image's entrypoint as the postgres user, on a copy of docker/postgres (0700 dirs)."""
    settings = {
        "PATH": os.environ["PATH"],
        "PGDATA": str(root / "data"),
        "POSTGRES_USER": "mlflow",
        "POSTGRES_DB": "mlflow",
        "INITDB_DIR": str(root / "initdb"),
        "PG_PORT": str(port),
        "PG_LISTEN": "127.0.0.1",
        **env,
    }
    return subprocess.Popen(
        _as_postgres(["env", *[f"{k}={v}" for k, v in settings.items()], "sh", "entrypoint.sh"]),
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _stop(root: Path, process: subprocess.Popen[str]) -> str:
    # Also stops the bootstrap server a failed init script leaves behind (socket only).
    subprocess.run(
        _as_postgres([_pg_tool("pg_ctl"), "-D", str(root / "data"), "-m", "fast", "-w", "stop"]),
        capture_output=True,
        check=False,
        timeout=60,
    )
    try:
        out, _ = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out


def _pg_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="housing-pg-init-"))
    shutil.copy(POSTGRES_DIR / "entrypoint.sh", root)
    shutil.copytree(POSTGRES_DIR / "initdb", root / "initdb")
    if os.geteuid() == 0:
        for path in (root, *root.rglob("*")):
            shutil.chown(path, "postgres", "postgres")
    return root


@pytest.mark.slow
def test_postgres_init_gives_optuna_its_own_database_and_user(monkeypatch) -> None:
    """First start of docker/postgres (its entrypoint + initdb/, no container) on Debian's
    PostgreSQL: `optuna` logs in with OPTUNA_DB_PASSWORD only, owns database optuna, cannot
    connect to MLflow's, and an Optuna study runs there through the compose worker's URL form
    (no password in it; libpq's PGPASSWORD)."""
    import optuna
    import psycopg

    root, port = _pg_root(), _free_port()
    admin_pw, optuna_pw = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    process = _entrypoint(
        root, port, {"POSTGRES_PASSWORD": admin_pw, "OPTUNA_DB_PASSWORD": optuna_pw}
    )
    try:

        def connect(user: str, password: str, dbname: str) -> psycopg.Connection:
            return psycopg.connect(
                host="127.0.0.1", port=port, user=user, password=password, dbname=dbname
            )

        deadline = time.monotonic() + PG_START_TIMEOUT_S
        while True:
            assert process.poll() is None, "the entrypoint exited during its first start"
            try:
                connect("mlflow", admin_pw, "mlflow").close()
                break
            except psycopg.OperationalError:
                assert time.monotonic() < deadline, "PostgreSQL did not accept connections"
                time.sleep(0.5)
        with connect("optuna", optuna_pw, "optuna") as conn:
            owner = conn.execute(
                "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = 'optuna'"
            ).fetchone()
            assert owner == ("optuna",)
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            connect("optuna", "wrong-" + optuna_pw, "optuna")
        for db in ("mlflow", "mlflow_auth"):
            with pytest.raises(psycopg.OperationalError, match="permission denied"):
                connect("optuna", optuna_pw, db)

        monkeypatch.setenv("PGPASSWORD", optuna_pw)
        url = f"postgresql+psycopg://optuna@127.0.0.1:{port}/optuna"
        study = optuna.create_study(study_name="init-check", storage=url)
        study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=3)
        again = optuna.load_study(study_name="init-check", storage=url)
        assert [t.state.name for t in again.trials] == ["COMPLETE"] * 3
    finally:
        log = _stop(root, process)
        shutil.rmtree(root, ignore_errors=True)
    assert optuna_pw not in log and admin_pw not in log, "a password in the server's output"


@pytest.mark.slow
def test_postgres_init_without_optuna_password_fails_the_first_start() -> None:
    root, port = _pg_root(), _free_port()
    process = _entrypoint(root, port, {"POSTGRES_PASSWORD": secrets.token_urlsafe(12)})
    try:
        code = process.wait(timeout=PG_START_TIMEOUT_S)
    finally:
        log = _stop(root, process)
        shutil.rmtree(root, ignore_errors=True)
    assert code != 0
    assert "OPTUNA_DB_PASSWORD is not set: cannot create the optuna user" in log
