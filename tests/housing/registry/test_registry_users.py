"""scripts/registry_users.py against a real PostgreSQL + ``mlflow server --app-name basic-auth``.

The script (what the compose one-shot ``registry-users`` runs) creates the API's read-only
user and grants it READ on the model; then: anonymous clients get 401, the read-only user 403
on registering and on moving the alias but reads the alias and downloads the champion's
bundle through the API's own REST reader, and the admin registers and promotes.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from auth_server import (
    ADMIN,
    READER,
    AuthServer,
    basic_auth,
    http,
    running_auth_server,
    running_postgres,
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


@dataclass(frozen=True)
class Stack:
    server: AuthServer
    first_run: subprocess.CompletedProcess[str]


def run_script(server: AuthServer, **overrides: str) -> subprocess.CompletedProcess[str]:
    """The script in a fresh process, configured like the compose service (environment only)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "HOUSING_"))}
    env.update(
        MLFLOW_TRACKING_URI=server.url,
        MLFLOW_TRACKING_USERNAME=ADMIN,
        MLFLOW_TRACKING_PASSWORD=server.admin_password,
        HOUSING_READER_USERNAME=READER,
        HOUSING_READER_PASSWORD=server.reader_password,
    )
    env.update(overrides)
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--wait", "30"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One server for the module; the reader exists only because the script created it."""
    started = time.monotonic()
    workdir = tmp_path_factory.mktemp("users-server")
    with (
        running_postgres() as (pg_port, _),
        running_auth_server(workdir, pg_port, create_reader=False) as server,
    ):
        logger.warning("PostgreSQL + basic-auth MLflow ready in %.1f s", time.monotonic() - started)
        yield Stack(server, run_script(server))


@pytest.fixture(scope="module")
def champion(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The admin registers a first version (promoted by the gate's floors); its number."""
    root = tmp_path_factory.mktemp("champion")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        _as(mp, ADMIN, stack.server.admin_password)
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


def _reader(server: AuthServer) -> str:
    return basic_auth(READER, server.reader_password)


def _admin(server: AuthServer) -> str:
    return basic_auth(ADMIN, server.admin_password)


def _set_alias(server: AuthServer, auth: str | None, version: str) -> int:
    body = {"name": MODEL_NAME, "alias": "champion", "version": version}
    return http(f"{server.url}{API}/registered-models/alias", body=body, auth=auth)[0]


def _new_version(server: AuthServer, auth: str | None) -> int:
    body = {"name": MODEL_NAME, "source": "mlflow-artifacts:/0/x/artifacts/model"}
    return http(f"{server.url}{API}/model-versions/create", body=body, auth=auth)[0]


def _explicit_grants(server: AuthServer) -> list[dict]:
    query = urllib.parse.urlencode({"username": READER})
    status, text = http(f"{server.url}{GRANTS}/list?{query}", auth=_admin(server))
    assert status == 200, text
    return [
        row
        for row in json.loads(text)["permissions"]
        if row.get("resource_type") == "registered_model"
    ]


def test_script_creates_a_non_admin_reader_with_read_on_the_model(stack: Stack) -> None:
    assert stack.first_run.returncode == 0, stack.first_run.stderr
    assert f"user {READER}: created" in stack.first_run.stderr
    assert "granted" in stack.first_run.stderr
    query = urllib.parse.urlencode({"username": READER})
    status, text = http(f"{stack.server.url}{API}/users/get?{query}", auth=_admin(stack.server))
    assert status == 200 and json.loads(text)["user"]["is_admin"] is False
    assert [row["permission"] for row in _explicit_grants(stack.server)] == ["READ"]


def test_script_is_idempotent_and_lowers_a_wider_grant(stack: Stack, champion: str) -> None:
    again = run_script(stack.server)
    assert again.returncode == 0, again.stderr
    assert "existed (password reset)" in again.stderr and ": kept" in again.stderr
    # Someone widened the API user's rights by hand: the next run puts it back to READ.
    server = stack.server
    target = {"username": READER, "resource_type": "registered_model", "resource_id": MODEL_NAME}
    assert http(f"{server.url}{GRANTS}/revoke", body=target, auth=_admin(server))[0] == 200
    body = {**target, "permission": "MANAGE"}
    assert http(f"{server.url}{GRANTS}/grant", body=body, auth=_admin(server))[0] == 200
    assert _set_alias(server, _reader(server), champion) == 200  # MANAGE may move the alias
    lowered = run_script(server)
    assert lowered.returncode == 0, lowered.stderr
    assert "lowered from MANAGE" in lowered.stderr
    assert [row["permission"] for row in _explicit_grants(server)] == ["READ"]
    assert _set_alias(server, _reader(server), champion) == 403


def test_script_errors_are_one_line_without_secrets(stack: Stack) -> None:
    server = stack.server
    wrong = run_script(server, MLFLOW_TRACKING_PASSWORD="not-the-admin-password")
    assert wrong.returncode == 1
    assert wrong.stderr.count("\n") == 1 and "401" in wrong.stderr
    assert "not-the-admin-password" not in wrong.stderr
    assert server.reader_password not in wrong.stderr
    missing = run_script(server, HOUSING_READER_PASSWORD="")
    assert (missing.returncode, missing.stderr.strip()) == (
        1,
        "registry_users: error: HOUSING_READER_PASSWORD is not set",
    )
    parts = urllib.parse.urlsplit(server.url)
    in_url = run_script(server, MLFLOW_TRACKING_URI=f"http://{ADMIN}:pw@{parts.netloc}")
    assert in_url.returncode == 1 and "not in the URL" in in_url.stderr


def test_anonymous_client_gets_401(stack: Stack, champion: str) -> None:
    server = stack.server
    assert _new_version(server, None) == 401
    assert _set_alias(server, None, champion) == 401
    assert http(f"{server.url}{API}/registered-models/create", body={"name": "x"})[0] == 401
    query = urllib.parse.urlencode({"name": MODEL_NAME, "alias": "champion"})
    assert http(f"{server.url}{API}/registered-models/alias?{query}")[0] == 401


def test_reader_gets_403_on_writes_and_reads_what_the_api_needs(
    stack: Stack, champion: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serve.sources.mlflow_rest import RestRegistry

    server = stack.server
    assert _new_version(server, _reader(server)) == 403
    assert _set_alias(server, _reader(server), champion) == 403
    delete = f"{server.url}{API}/registered-models/alias?" + urllib.parse.urlencode(
        {"name": MODEL_NAME, "alias": "champion"}
    )
    assert http(delete, auth=_reader(server), method="DELETE")[0] == 403
    # The API's REST reader with the API's credentials: alias, then the bundle's files.
    _as(monkeypatch, READER, server.reader_password)
    registry = RestRegistry(server.url)
    target = registry.alias_target(MODEL_NAME, "champion")
    assert target.version == _current_champion(server)
    registry.download_bundle(target, tmp_path / "bundle")
    assert json.loads((tmp_path / "bundle" / "model.json").read_text())["features"]


def test_reader_can_still_create_resources_of_its_own(stack: Stack) -> None:
    """A limit of basic-auth without workspaces, documented in docs/governance.md: any
    authenticated user may create experiments and registered models (and then owns them)."""
    server = stack.server
    body = {"name": "reader-scratch-model"}
    status, _ = http(f"{server.url}{API}/registered-models/create", body=body, auth=_reader(server))
    assert status == 200
    body = {"name": "reader-scratch-experiment"}
    status, _ = http(f"{server.url}{API}/experiments/create", body=body, auth=_reader(server))
    assert status == 200


def test_admin_registers_and_promotes(
    stack: Stack, champion: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = stack.server
    monkeypatch.chdir(tmp_path)
    _as(monkeypatch, ADMIN, server.admin_password)
    newer = _register(server, tmp_path, alpha=1.0)  # better on the held-out rows: promoted
    assert int(newer) > int(champion)
    assert version_for_alias(tracking_uri=server.url).version == newer == _current_champion(server)


def _current_champion(server: AuthServer) -> str:
    query = urllib.parse.urlencode({"name": MODEL_NAME, "alias": "champion"})
    status, text = http(f"{server.url}{API}/registered-models/alias?{query}", auth=_admin(server))
    assert status == 200, text
    return str(json.loads(text)["model_version"]["version"])
