"""The registry behind authentication: PostgreSQL + ``mlflow server --app-name basic-auth``.

Anonymous clients get 401 and the read-only user 403 on registering and on moving an alias;
the read-only user can still resolve the champion; the admin (the pipeline's credentials, from
MLFLOW_TRACKING_USERNAME/PASSWORD) registers, gates and promotes through housing.registry.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Iterator
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

from housing.registry import (
    MODEL_NAME,
    RegistryError,
    list_versions,
    log_and_register,
    promote,
    resolve,
    rollback,
    version_for_alias,
)

pytestmark = pytest.mark.slow
logger = logging.getLogger(__name__)

API = "/api/2.0/mlflow"


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthServer]:
    started = time.monotonic()
    with (
        running_postgres() as (pg_port, _),
        running_auth_server(tmp_path_factory.mktemp("auth-server"), pg_port) as server,
    ):
        logger.warning("PostgreSQL + basic-auth MLflow ready in %.1f s", time.monotonic() - started)
        yield server


def _as(monkeypatch, user: str | None, password: str | None = None) -> None:
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    if user is not None:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password or "")


def test_admin_registers_gates_and_promotes(auth_server: AuthServer, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _as(monkeypatch, ADMIN, auth_server.admin_password)
    X, y = synthetic_frame()
    test = test_rows()
    plot = tmp_path / "plot.csv"
    plot.write_text("a,b\n1,2\n")
    regs = []
    for key, alpha in (("1", 5.0), ("2", 1.0)):  # v2 is better on the held-out rows
        model = ridge_pipeline(alpha, X, y)
        trusted = write_bundle(model, tmp_path / f"b{key}", note=f"v{key}")
        kwargs = register_kwargs(
            model, tmp_path / f"b{key}", X, {"r2": 0.9, "rmse": 20_000.0}, trusted, plot,
            auth_server.url, test,
        )  # fmt: skip
        regs.append(log_and_register(**kwargs))
    assert [(r.version, r.promoted) for r in regs] == [("1", True), ("2", True)]
    assert "paired dRMSE vs champion v1" in regs[1].decision.reason
    assert version_for_alias(tracking_uri=auth_server.url).version == "2"
    assert rollback("admin rollback", tracking_uri=auth_server.url).version == "1"
    info = promote("2", "admin promote", tracking_uri=auth_server.url, expected_current="1")
    assert info.version == "2" and info.tags["promotion.mode"] == "manual"
    stored = list((auth_server.workdir / "artifacts").rglob("bundle/model.skops"))
    assert len(stored) == 2  # artifacts went through the server's served volume


def _set_alias(url: str, auth: str | None) -> tuple[int, str]:
    body = {"name": MODEL_NAME, "alias": "champion", "version": "1"}
    return http(f"{url}{API}/registered-models/alias", body=body, auth=auth)


def _new_version(url: str, auth: str | None) -> tuple[int, str]:
    body = {"name": MODEL_NAME, "source": "mlflow-artifacts:/0/x/artifacts/model"}
    return http(f"{url}{API}/model-versions/create", body=body, auth=auth)


def test_anonymous_client_cannot_register_or_move_the_alias(
    auth_server: AuthServer, monkeypatch, tmp_path: Path
):
    url = auth_server.url
    assert _new_version(url, None)[0] == 401
    assert _set_alias(url, None)[0] == 401
    assert http(f"{url}{API}/registered-models/create", body={"name": "x"})[0] == 401
    _as(monkeypatch, None)
    with pytest.raises(RegistryError, match=r"401|[Uu]nauthori"):
        promote("1", "anonymous", tracking_uri=url)
    with pytest.raises(RegistryError, match=r"401|[Uu]nauthori"):
        version_for_alias(tracking_uri=url)
    assert _champion(auth_server) == "2"


def test_read_only_user_resolves_but_cannot_register_or_move_the_alias(
    auth_server: AuthServer, monkeypatch, tmp_path: Path
):
    url = auth_server.url
    reader = basic_auth(READER, auth_server.reader_password)
    assert _new_version(url, reader)[0] == 403
    assert _set_alias(url, reader)[0] == 403
    query = urllib.parse.urlencode({"name": MODEL_NAME, "alias": "champion"})
    status, _ = http(f"{url}{API}/registered-models/alias?{query}", auth=reader)
    assert status == 200

    _as(monkeypatch, READER, auth_server.reader_password)
    monkeypatch.chdir(tmp_path)
    resolved = resolve(tracking_uri=url, dst=tmp_path / "dl")
    assert resolved.version == "2" and (resolved.bundle_local_dir / "model.skops").is_file()
    assert [v.version for v in list_versions(tracking_uri=url)] == ["2", "1"]
    with pytest.raises(RegistryError, match=r"403|PERMISSION_DENIED|[Pp]ermission") as denied:
        promote("1", "reader tries", tracking_uri=url)
    assert auth_server.reader_password not in str(denied.value)
    with pytest.raises(RegistryError, match=r"403|PERMISSION_DENIED|[Pp]ermission"):
        rollback("reader tries", tracking_uri=url)

    X, y = synthetic_frame(seed=4)
    model = ridge_pipeline(1.0, X, y)
    trusted = write_bundle(model, tmp_path / "b", note="reader")
    plot = tmp_path / "plot.csv"
    plot.write_text("a\n1\n")
    kwargs = register_kwargs(model, tmp_path / "b", X, {"r2": 0.9, "rmse": 1.0}, trusted, plot, url)
    with pytest.raises(RegistryError, match=r"403|PERMISSION_DENIED|[Pp]ermission"):
        log_and_register(**kwargs)
    assert _champion(auth_server) == "2"


def _champion(server: AuthServer) -> str:
    query = urllib.parse.urlencode({"name": MODEL_NAME, "alias": "champion"})
    status, text = http(
        f"{server.url}{API}/registered-models/alias?{query}",
        auth=basic_auth(ADMIN, server.admin_password),
    )
    assert status == 200, text
    import json

    return str(json.loads(text)["model_version"]["version"])
