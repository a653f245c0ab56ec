"""The compose file's registry, run without containers, and scripts/registry_users.py on it.

The ``postgres`` service's start-up (docker/postgres/entrypoint.sh on Debian's package, password
required), the ``mlflow`` service's exact command and environment from docker-compose.yaml
with the committed docker/mlflow/basic_auth.ini, and the ``registry-users`` one-shot, all with
the values of .env.example; only hosts, ports and paths are rewritten to loopback and temp
dirs. Then: anonymous clients get 401, the API's read-only user 403 on registering and on
moving the alias but reads the alias and downloads the champion's bundle through the API's own
REST reader with the ``api`` service's credentials, and the admin registers and promotes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from auth_server import (
    AuthServer,
    basic_auth,
    free_port,
    http,
    running_postgres_entrypoint,
    serving,
)
from registry_support import (
    register_kwargs,
    ridge_pipeline,
    synthetic_frame,
    test_rows,
    write_bundle,
)

from housing.registry import MODEL_NAME, log_and_register, version_for_alias

pytestmark = pytest.mark.slow
logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
SCRIPT = REPO_ROOT / "scripts" / "registry_users.py"
API = "/api/2.0/mlflow"
GRANTS = "/api/3.0/mlflow/users/permissions"
_REF = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::([?-])([^}]*))?\}")


def interpolate(value: str, values: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?message}`` (fails when unset)."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        found = values.get(name) or ""
        if op == "?" and not found:
            pytest.fail(f"{name}: {arg}")
        return found or (arg if op == "-" else "")

    return _REF.sub(one, value)


def service_env(compose: dict[str, Any], name: str, values: dict[str, str]) -> dict[str, str]:
    env = compose["services"][name].get("environment") or {}
    return {key: interpolate(str(value), values) for key, value in env.items()}


@dataclass(frozen=True)
class Stack:
    server: AuthServer
    admin: str
    reader: str
    users_env: dict[str, str]  # the registry-users one-shot's environment, URL rewritten
    api_env: dict[str, str]  # the api service's registry credentials
    first_run: subprocess.CompletedProcess[str]
    pg_port: int
    pg_password: str


def run_script(stack_or_env: Stack | dict[str, str], **overrides: str):
    """The one-shot's command in a fresh process, configured by its environment only."""
    users_env = stack_or_env.users_env if isinstance(stack_or_env, Stack) else stack_or_env
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "HOUSING_"))}
    env.update(users_env)
    env.update(overrides)
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--wait", "30"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _mlflow_command(
    compose: dict[str, Any], values: dict[str, str], pg_port: int, port: int, workdir: Path
) -> list[str]:
    """The mlflow service's command with the compose network's names made loopback ones."""
    command = [interpolate(str(arg), values).replace("@postgres:5432/", f"@127.0.0.1:{pg_port}/")
               for arg in compose["services"]["mlflow"]["command"]]  # fmt: skip
    assert command[:2] == ["mlflow", "server"]
    rewrite = {"--host": "127.0.0.1", "--port": str(port),
               "--artifacts-destination": str(workdir / "artifacts")}  # fmt: skip
    for flag, value in rewrite.items():
        command[command.index(flag) + 1] = value
    hosts = command.index("--allowed-hosts") + 1
    command[hosts] += f",127.0.0.1:{port}"
    return [sys.executable, "-m", "mlflow", *command[1:]]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One stack for the module; the reader exists only because the one-shot created it."""
    from dotenv import dotenv_values

    started = time.monotonic()
    workdir = tmp_path_factory.mktemp("compose-registry")
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text(encoding="utf-8"))
    values = {k: v or "" for k, v in dotenv_values(REPO_ROOT / ".env.example").items()}
    pg_env = service_env(compose, "postgres", values)
    with running_postgres_entrypoint(
        REPO_ROOT / "docker/postgres/entrypoint.sh", REPO_ROOT / "docker/postgres/initdb", pg_env
    ) as pg:
        config = workdir / "basic_auth.ini"
        ini = (REPO_ROOT / "docker/mlflow/basic_auth.ini").read_text(encoding="utf-8")
        config.write_text(ini.replace("@postgres:5432/", f"@127.0.0.1:{pg.port}/"))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PG"))}
        env.update(service_env(compose, "mlflow", values), MLFLOW_AUTH_CONFIG_PATH=str(config))
        cmd = _mlflow_command(compose, values, pg.port, port, workdir)
        log_path = workdir / "server.log"
        with serving(cmd, env, workdir, url, log_path):
            logger.warning("compose registry ready in %.1f s", time.monotonic() - started)
            users_env = service_env(compose, "registry-users", values)
            users_env["MLFLOW_TRACKING_URI"] = url
            api_env = service_env(compose, "api", values)
            server = AuthServer(
                url,
                admin_password=env["MLFLOW_AUTH_ADMIN_PASSWORD"],
                reader_password=users_env["HOUSING_READER_PASSWORD"],
                workdir=workdir,
                log=log_path,
            )
            yield Stack(
                server,
                admin=env["MLFLOW_AUTH_ADMIN_USERNAME"],
                reader=users_env["HOUSING_READER_USERNAME"],
                users_env=users_env,
                api_env=api_env,
                first_run=run_script(users_env),
                pg_port=pg.port,
                pg_password=pg_env["POSTGRES_PASSWORD"],
            )
    assert pg.exit_code == 0, "postgres did not stop cleanly on SIGINT"


@pytest.fixture(scope="module")
def champion(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The admin registers a first version (promoted by the gate's floors); its number."""
    root = tmp_path_factory.mktemp("champion")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        _as(mp, stack.admin, stack.server.admin_password)
        return _register(stack.server, root, alpha=5.0)


def _as(mp: pytest.MonkeyPatch, user: str | None, password: str | None = None) -> None:
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        mp.delenv(key, raising=False)
    if user is not None:
        mp.setenv("MLFLOW_TRACKING_USERNAME", user)
        mp.setenv("MLFLOW_TRACKING_PASSWORD", password or "")


def _register(server: AuthServer, root: Path, *, alpha: float) -> str:
    X, y = synthetic_frame()
    model = ridge_pipeline(alpha, X, y)
    bundle = root / f"bundle-{alpha}"
    trusted = write_bundle(model, bundle, note=f"alpha {alpha}")
    plot = root / "plot.csv"
    plot.write_text("a,b\n1,2\n")
    metrics = {"r2": 0.9, "rmse": 20_000.0}
    kwargs = register_kwargs(model, bundle, X, metrics, trusted, plot, server.url, test_rows())
    registration = log_and_register(**kwargs)
    assert registration.promoted, registration.decision.reason
    return registration.version


def _reader(stack: Stack) -> str:
    return basic_auth(stack.reader, stack.server.reader_password)


def _admin(stack: Stack) -> str:
    return basic_auth(stack.admin, stack.server.admin_password)


def _set_alias(stack: Stack, auth: str | None, version: str) -> int:
    body = {"name": MODEL_NAME, "alias": "champion", "version": version}
    return http(f"{stack.server.url}{API}/registered-models/alias", body=body, auth=auth)[0]


def _new_version(stack: Stack, auth: str | None) -> int:
    body = {"name": MODEL_NAME, "source": "mlflow-artifacts:/0/x/artifacts/model"}
    return http(f"{stack.server.url}{API}/model-versions/create", body=body, auth=auth)[0]


def _explicit_grants(stack: Stack) -> list[dict]:
    query = urllib.parse.urlencode({"username": stack.reader})
    status, text = http(f"{stack.server.url}{GRANTS}/list?{query}", auth=_admin(stack))
    assert status == 200, text
    return [
        row
        for row in json.loads(text)["permissions"]
        if row.get("resource_type") == "registered_model"
    ]


def _current_champion(stack: Stack) -> str:
    query = urllib.parse.urlencode({"name": MODEL_NAME, "alias": "champion"})
    url = f"{stack.server.url}{API}/registered-models/alias?{query}"
    status, text = http(url, auth=_admin(stack))
    assert status == 200, text
    return str(json.loads(text)["model_version"]["version"])


def test_postgres_requires_the_password_that_the_mlflow_service_passes(stack: Stack) -> None:
    import sqlalchemy as sa

    uri = f"postgresql+psycopg://mlflow@127.0.0.1:{stack.pg_port}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PGPASSWORD", stack.pg_password)
        for db in ("mlflow", "mlflow_auth"):  # POSTGRES_DB and initdb/10-mlflow-auth.sql
            engine = sa.create_engine(f"{uri}/{db}")
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT current_database()")).scalar() == db
            engine.dispose()
        mp.setenv("PGPASSWORD", "wrong")
        engine = sa.create_engine(f"{uri}/mlflow")
        with pytest.raises(sa.exc.OperationalError, match="password authentication failed"):
            engine.connect()
        engine.dispose()


def test_one_shot_creates_a_non_admin_reader_with_read_on_the_model(stack: Stack) -> None:
    assert stack.first_run.returncode == 0, stack.first_run.stderr
    assert f"user {stack.reader}: created" in stack.first_run.stderr
    assert "granted" in stack.first_run.stderr
    query = urllib.parse.urlencode({"username": stack.reader})
    status, text = http(f"{stack.server.url}{API}/users/get?{query}", auth=_admin(stack))
    assert status == 200 and json.loads(text)["user"]["is_admin"] is False
    assert [row["permission"] for row in _explicit_grants(stack)] == ["READ"]
    # The api service uses exactly the credentials the one-shot created.
    assert stack.api_env["MLFLOW_TRACKING_USERNAME"] == stack.reader
    assert stack.api_env["MLFLOW_TRACKING_PASSWORD"] == stack.server.reader_password


def test_script_is_idempotent_and_lowers_a_wider_grant(stack: Stack, champion: str) -> None:
    again = run_script(stack)
    assert again.returncode == 0, again.stderr
    assert "existed (password reset)" in again.stderr and ": kept" in again.stderr
    # Someone widened the API user's rights by hand: the next run puts it back to READ.
    url = stack.server.url
    target = {"username": stack.reader, "resource_type": "registered_model"}
    target["resource_id"] = MODEL_NAME
    assert http(f"{url}{GRANTS}/revoke", body=target, auth=_admin(stack))[0] == 200
    body = {**target, "permission": "MANAGE"}
    assert http(f"{url}{GRANTS}/grant", body=body, auth=_admin(stack))[0] == 200
    assert _set_alias(stack, _reader(stack), champion) == 200  # MANAGE may move the alias
    lowered = run_script(stack)
    assert lowered.returncode == 0, lowered.stderr
    assert "lowered from MANAGE" in lowered.stderr
    assert [row["permission"] for row in _explicit_grants(stack)] == ["READ"]
    assert _set_alias(stack, _reader(stack), champion) == 403
    # Someone made it an admin: the next run takes that back.
    flag = {"username": stack.reader, "is_admin": True}
    url_admin = f"{url}{API}/users/update-admin"
    assert http(url_admin, body=flag, auth=_admin(stack), method="PATCH")[0] == 200
    assert _set_alias(stack, _reader(stack), champion) == 200
    demoted = run_script(stack)
    assert demoted.returncode == 0 and "admin flag removed" in demoted.stderr, demoted.stderr
    assert _set_alias(stack, _reader(stack), champion) == 403


def test_script_errors_are_one_line_without_secrets(stack: Stack) -> None:
    wrong = run_script(stack, MLFLOW_TRACKING_PASSWORD="not-the-admin-password")
    assert wrong.returncode == 1
    assert wrong.stderr.count("\n") == 1 and "401" in wrong.stderr
    assert "not-the-admin-password" not in wrong.stderr
    assert stack.server.reader_password not in wrong.stderr
    missing = run_script(stack, HOUSING_READER_PASSWORD="")
    assert (missing.returncode, missing.stderr.strip()) == (
        1,
        "registry_users: error: HOUSING_READER_PASSWORD is not set",
    )
    netloc = urllib.parse.urlsplit(stack.server.url).netloc
    in_url = run_script(stack, MLFLOW_TRACKING_URI=f"http://{stack.admin}:pw@{netloc}")
    assert in_url.returncode == 1 and "not in the URL" in in_url.stderr
    same = run_script(stack, HOUSING_READER_USERNAME=stack.admin)
    assert same.returncode == 1 and "must differ from the admin" in same.stderr


def test_anonymous_client_gets_401(stack: Stack, champion: str) -> None:
    url = stack.server.url
    assert _new_version(stack, None) == 401
    assert _set_alias(stack, None, champion) == 401
    assert http(f"{url}{API}/registered-models/create", body={"name": "x"})[0] == 401
    query = urllib.parse.urlencode({"name": MODEL_NAME, "alias": "champion"})
    assert http(f"{url}{API}/registered-models/alias?{query}")[0] == 401


def test_reader_gets_403_on_writes_and_reads_what_the_api_needs(
    stack: Stack, champion: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serve.sources.mlflow_rest import RestRegistry

    assert _new_version(stack, _reader(stack)) == 403
    assert _set_alias(stack, _reader(stack), champion) == 403
    query = urllib.parse.urlencode({"name": MODEL_NAME, "alias": "champion"})
    delete = f"{stack.server.url}{API}/registered-models/alias?{query}"
    assert http(delete, auth=_reader(stack), method="DELETE")[0] == 403
    # The API's REST reader with the api service's credentials: the alias, then the bundle.
    _as(
        monkeypatch,
        stack.api_env["MLFLOW_TRACKING_USERNAME"],
        stack.api_env["MLFLOW_TRACKING_PASSWORD"],
    )
    registry = RestRegistry(stack.server.url)
    target = registry.alias_target(MODEL_NAME, "champion")
    assert target.version == _current_champion(stack)
    registry.download_bundle(target, tmp_path / "bundle")
    assert json.loads((tmp_path / "bundle" / "model.json").read_text())["features"]


def test_reader_can_still_create_resources_of_its_own(stack: Stack) -> None:
    """A limit of basic-auth without workspaces, documented in docs/governance.md: any
    authenticated user may create experiments and registered models (and then owns them)."""
    url, reader = stack.server.url, _reader(stack)
    body = {"name": "reader-scratch-model"}
    assert http(f"{url}{API}/registered-models/create", body=body, auth=reader)[0] == 200
    body = {"name": "reader-scratch-experiment"}
    assert http(f"{url}{API}/experiments/create", body=body, auth=reader)[0] == 200


def test_admin_registers_and_promotes(
    stack: Stack, champion: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _as(monkeypatch, stack.admin, stack.server.admin_password)
    newer = _register(stack.server, tmp_path, alpha=1.0)  # better on the held-out rows: promoted
    assert int(newer) > int(champion)
    current = version_for_alias(tracking_uri=stack.server.url).version
    assert current == newer == _current_champion(stack)


def _serve_support() -> Any:
    """tests/serve/serve_support.py (register_bundle, settings), loaded by path."""
    import importlib.util

    name = "_housing_serve_support"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[2] / "serve" / "serve_support.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_the_api_as_reader_serves_the_signed_champion(
    stack: Stack,
    champion: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model_bundle_dir: Path,
    small_train: Any,
    signing_key: Any,
    verify_pem: str,
) -> None:
    """The pipeline's admin promotes a real bundle, signed; the API, logged in as the
    read-only user of the compose file and trusting the signing key, serves it."""
    from fastapi.testclient import TestClient

    from serve.main import create_app

    support = _serve_support()
    monkeypatch.chdir(tmp_path)
    _as(monkeypatch, stack.admin, stack.server.admin_password)
    monkeypatch.setenv("HOUSING_SIGNING_KEY", signing_key.private_pem().decode())
    registration = support.register_bundle(
        stack.server.url, model_bundle_dir, small_train, rmse=39_000, commit="c-auth"
    )
    assert registration.promoted
    monkeypatch.delenv("HOUSING_SIGNING_KEY")
    _as(
        monkeypatch,
        stack.api_env["MLFLOW_TRACKING_USERNAME"],
        stack.api_env["MLFLOW_TRACKING_PASSWORD"],
    )
    settings = support.make_settings(
        model_sources=("registry",),
        mlflow_tracking_uri=stack.server.url,
        housing_verify_keys=verify_pem,
    )
    with TestClient(create_app(settings)) as client:
        info = client.get("/api/v1/model").json()
        assert info["version"] == registration.version, info["load_errors"]
        assert info["signed"] is True and info["key_id"] == signing_key.key_id
        assert info["source_detail"].startswith("registry (rest)")
        example = client.get("/api/v1/contract").json()["example"]
        assert client.post("/api/v1/predict", json={"instances": [example]}).status_code == 200


def test_two_concurrent_promoters_move_the_alias_once(
    stack: Stack, champion: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signing_key
) -> None:
    """Issue 23: two promoters at once on the authenticated PostgreSQL-backed server. Both
    read the same champion and the same next sequence number and reach the lease together
    (a barrier in front of the lease's create call, the only test-side hook); the server
    grants it to one. The alias moves once, and the loser's attempt is in the history."""
    import threading

    from mlflow import MlflowClient

    from housing.registry import RegistryError, promote
    from housing.registry.history import read_events
    from housing.registry.lease import LEASE_INFIX, attempts_from_tags, lease_name

    monkeypatch.chdir(tmp_path)
    _as(monkeypatch, stack.admin, stack.server.admin_password)
    monkeypatch.setenv("HOUSING_SIGNING_KEY", signing_key.private_pem().decode())
    url = stack.server.url
    admin = MlflowClient(tracking_uri=url, registry_uri=url)
    current = _current_champion(stack)
    others = [
        str(v.version)
        for v in admin.search_model_versions(f"name = '{MODEL_NAME}'")
        if str(v.version) != current
    ][:2]
    assert len(others) == 2, others
    before, _ = read_events(admin, MODEL_NAME)

    together = threading.Barrier(2, timeout=60)
    create = MlflowClient.create_registered_model

    def lease_together(self, name, *args, **kwargs):
        if LEASE_INFIX in name:
            together.wait()
        return create(self, name, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "create_registered_model", lease_together)
    outcomes: dict[str, object] = {}

    def promoter(who: str, version: str) -> None:
        try:
            outcomes[who] = promote(
                version, f"{who}'s release", tracking_uri=url, expected_current=current, who=who
            ).version
        except RegistryError as exc:
            outcomes[who] = exc

    threads = [
        threading.Thread(target=promoter, args=(who, version))
        for who, version in zip(("ana", "ben"), others, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    monkeypatch.setattr(MlflowClient, "create_registered_model", create)

    won = {who: v for who, v in outcomes.items() if isinstance(v, str)}
    lost = {who: e for who, e in outcomes.items() if isinstance(e, RegistryError)}
    assert len(won) == 1 and len(lost) == 1, outcomes
    (winner, target), (loser, error) = *won.items(), *lost.items()
    assert "was taken by" in str(error) and "nothing changed" in str(error)
    after, _ = read_events(admin, MODEL_NAME)
    assert len(after) == len(before) + 1  # the alias moved once
    assert after[-1].who == winner and after[-1].version == target == _current_champion(stack)
    seq = after[-1].seq
    lease = admin.get_registered_model(lease_name(MODEL_NAME, seq))
    assert (lease.tags or {}).get("lease.holder") == winner
    attempts = attempts_from_tags(dict(admin.get_registered_model(MODEL_NAME).tags or {}))
    refused = [a for a in attempts if a["who"] == loser]
    assert len(refused) == 1 and refused[0]["seq"] == seq, attempts
    assert refused[0]["version"] == dict(zip(("ana", "ben"), others, strict=True))[loser]
