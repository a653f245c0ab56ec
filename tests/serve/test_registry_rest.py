"""The registry source over a real ``mlflow server``'s REST API, and credential redaction.

One server per module (it takes ~30 s to start), filled by the real register code. The API
side reads it with the stdlib only: alias, download, sha256 check, alias moves. With a
password in the tracking URI, nothing the API answers or logs may contain it, whether the
registry answers, refuses, or is not there at all.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_support import REPO_ROOT, free_port, register_bundle, running_uvicorn

from housing.signing import KeyRing
from serve.sources.base import SourceError
from serve.sources.mlflow_common import SERVING_SHA_TAG
from serve.sources.registry import RegistrySource

pytestmark = pytest.mark.slow

PASSWORD = "S3cretPw"
SECRET_FORMS = (PASSWORD, base64.b64encode(f"admin:{PASSWORD}".encode()).decode())


def _registry_support() -> Any:
    name = "_housing_registry_support"
    path = REPO_ROOT / "tests" / "housing" / "registry" / "registry_support.py"
    spec = importlib.util.spec_from_file_location(name, path)
    if name not in sys.modules:
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses look themselves up there
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_bundle_dir, small_train) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("mlflow-rest")
    with _registry_support().running_mlflow_server(workdir) as url:
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(workdir)
            mp.delenv("MLFLOW_TRACKING_URI", raising=False)
            register_bundle(url, model_bundle_dir, small_train, rmse=39_000, commit="c1")
        yield url, workdir


def _source(uri: str, alias: str = "champion") -> RegistrySource:
    return RegistrySource(
        uri, model_name="housing_price_model", alias=alias, context_limit=50, keys=KeyRing({})
    )


def _with_password(url: str) -> str:
    return url.replace("http://", f"http://admin:{PASSWORD}@")


def test_rest_source_loads_the_champion(server):
    url, _ = server
    target = _source(url)._registry().alias_target("housing_price_model", "champion")
    model = _source(_with_password(url)).load()
    ident = model.identity
    assert ident.source == "registry" and ident.source_detail.startswith("registry (rest)")
    assert ident.version == target.version and ident.run_id == target.run_id
    assert ident.fingerprint == _source(url).fingerprint()
    assert ident.metrics["rmse"] == pytest.approx(float(target.tags["metric.rmse"]))
    assert PASSWORD not in repr(ident)


def test_rest_source_follows_an_alias_move(server, bundle_v2, small_train, monkeypatch):
    url, workdir = server
    source = _source(url)
    before = source.fingerprint()
    monkeypatch.chdir(workdir)
    reg = register_bundle(url, bundle_v2, small_train, rmse=38_000, commit="c2")
    assert reg.promoted
    after = source.fingerprint()
    assert after != before and after.startswith(f"{reg.version}:")
    model = source.load()
    assert model.identity.version == reg.version and model.identity.git_commit == "c2"


def test_rest_source_refuses_a_tampered_artifact(server):
    url, workdir = server
    target = _source(url)._registry().alias_target("housing_price_model", "champion")
    bundle = next((workdir / "art").rglob(f"{target.run_id}/artifacts/bundle"))
    if target.tags.get(SERVING_SHA_TAG):
        victim = max(
            (p for p in (bundle / "serving").rglob("*") if p.is_file()),
            key=lambda p: p.stat().st_size,
        )
    else:
        victim = bundle / "model.skops"
    original = victim.read_bytes()
    try:
        victim.write_bytes(original[:-10] + b"0123456789")
        with pytest.raises(SourceError, match="sha256"):
            _source(url).load()
    finally:
        victim.write_bytes(original)


def test_rest_errors_are_one_line(server):
    url, _ = server
    with pytest.raises(SourceError) as err:
        _source(_with_password(url), alias="nope").fingerprint()
    message = str(err.value)
    assert "HTTP 400" in message and "alias nope not found" in message  # MLflow 3.17 says 400
    assert "\n" not in message and PASSWORD not in message
    with pytest.raises(SourceError, match="unreachable") as err:
        _source(f"http://admin:{PASSWORD}@127.0.0.1:{free_port()}").fingerprint()
    assert PASSWORD not in str(err.value) and "admin:***@" in str(err.value)


class _AuthServer(ThreadingHTTPServer):
    seen: list[str]


class _Refuse(BaseHTTPRequestHandler):
    """Records the Authorization header and refuses it, quoting it back (as a bad proxy might)."""

    def do_GET(self) -> None:
        header = self.headers.get("Authorization", "")
        self.server.seen.append(header)
        body = json.dumps({"error_code": "UNAUTHENTICATED", "message": f"bad {header}"}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def refusing_server() -> Iterator[_AuthServer]:
    httpd = _AuthServer(("127.0.0.1", 0), _Refuse)
    httpd.seen = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_credentials_are_sent_as_basic_auth_and_never_echoed(refusing_server, monkeypatch):
    port = refusing_server.server_address[1]
    expected = "Basic " + SECRET_FORMS[1]
    with pytest.raises(SourceError) as err:
        _source(f"http://admin:{PASSWORD}@127.0.0.1:{port}").fingerprint()
    assert refusing_server.seen == [expected]
    assert "HTTP 401" in str(err.value)
    assert not any(form in str(err.value) for form in SECRET_FORMS), str(err.value)

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    with pytest.raises(SourceError) as err:
        _source(f"http://127.0.0.1:{port}").fingerprint()
    assert refusing_server.seen[-1] == expected
    assert not any(form in str(err.value) for form in SECRET_FORMS), str(err.value)


# --- every output of a real uvicorn process, with the password in the tracking URI --------


def _collect(base: str, example: dict | None) -> list[str]:
    """Every answer a client or the app panel can see."""
    out = []
    for path in ("/ready", "/health", "/api/v1/model", "/metrics"):
        out.append(httpx.get(f"{base}{path}", timeout=10).text)
    instance = example or {"longitude": -122.2, "latitude": 37.8}
    out.append(
        httpx.post(f"{base}/api/v1/predict", json={"instances": [instance]}, timeout=10).text
    )
    headers = {"Authorization": "Bearer tok"}
    out.append(httpx.post(f"{base}/api/v1/admin/reload", headers=headers, timeout=60).text)
    out.append(httpx.get(f"{base}/api/v1/model", timeout=10).text)
    return out


def _wait_settled(base: str, timeout: float = 60.0) -> dict:
    """Wait until the background load either served a model or reported its errors."""
    deadline = time.monotonic() + timeout
    while True:
        info = httpx.get(f"{base}/api/v1/model", timeout=10).json()
        if info.get("version") or info.get("load_errors"):
            return info
        assert time.monotonic() < deadline, info
        time.sleep(0.1)


def test_no_output_carries_the_password(server, tmp_path):
    url, _ = server
    dead = f"http://admin:{PASSWORD}@127.0.0.1:{free_port()}"
    cases = {
        "answers": {"MLFLOW_TRACKING_URI": _with_password(url)},
        "no such alias": {"MLFLOW_TRACKING_URI": _with_password(url), "MODEL_ALIAS": "nope"},
        "no such model": {"MLFLOW_TRACKING_URI": _with_password(url), "MODEL_NAME": "nope"},
        "not there": {"MLFLOW_TRACKING_URI": dead},
        "env password": {
            "MLFLOW_TRACKING_URI": url,
            "MLFLOW_TRACKING_USERNAME": "admin",
            "MLFLOW_TRACKING_PASSWORD": PASSWORD,
            "MODEL_ALIAS": "nope",
        },
    }
    seen: dict[str, str] = {}
    for name, env in cases.items():
        with running_uvicorn(
            tmp_path,
            wait_ready=False,
            MODEL_SOURCES="registry",
            ADMIN_TOKEN="tok",
            LOG_JSON="true",
            LOG_LEVEL="DEBUG",
            **env,
        ) as srv:
            info = _wait_settled(srv.base_url)
            example = None
            if info.get("version"):
                example = httpx.get(f"{srv.base_url}/api/v1/contract", timeout=10).json()["example"]
            texts = _collect(srv.base_url, example)
        texts.append(srv.logs())  # stderr and stdout of the process, after it stopped
        seen[name] = "\n".join(texts)
    assert '"source":"registry"' in seen["answers"].replace(" ", "")
    assert "admin:***@" in seen["answers"]  # the URI is shown, its password is not
    for name in ("no such alias", "not there", "env password"):
        assert "registry:" in seen[name], (name, seen[name][-2000:])
    for name, text in seen.items():
        for form in SECRET_FORMS:
            assert form not in text, f"{name}: {form!r} leaked:\n{text[-3000:]}"


# --- a misbehaving server: endless listings, oversized answers ------------------------------


class _Misbehave(BaseHTTPRequestHandler):
    """``mode`` on the server: "same-token", "new-token", "big-json" or "big-file"."""

    def do_GET(self) -> None:
        mode = self.server.mode
        self.server.seen.append(self.path)
        if self.path.startswith("/get-artifact"):
            body = b"x" * 5000
        elif mode == "big-json":
            body = json.dumps({"files": [], "pad": "y" * 5000}).encode()
        elif mode == "big-file":
            files = [{"path": "bundle/model.json", "is_dir": False, "file_size": 5000}]
            body = json.dumps({"files": files}).encode()
        else:
            token = "same" if mode == "same-token" else f"t{len(self.server.seen)}"
            body = json.dumps({"files": [], "next_page_token": token}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def misbehaving_server() -> Iterator[_AuthServer]:
    httpd = _AuthServer(("127.0.0.1", 0), _Misbehave)
    httpd.seen = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_listing_stops_on_a_repeated_page_token_or_too_many_pages(misbehaving_server, monkeypatch):
    from serve.sources import mlflow_rest

    registry = mlflow_rest.RestRegistry(f"http://127.0.0.1:{misbehaving_server.server_address[1]}")
    misbehaving_server.mode = "same-token"
    with pytest.raises(SourceError, match="repeated page token 'same'"):
        registry.list_files("run1")
    assert len(misbehaving_server.seen) == 2
    misbehaving_server.mode = "new-token"
    monkeypatch.setattr(mlflow_rest, "_MAX_PAGES", 5)
    with pytest.raises(SourceError, match="more than 5 pages"):
        registry.list_files("run1")


def test_oversized_answers_and_downloads_are_refused(misbehaving_server, monkeypatch, tmp_path):
    from serve.sources import mlflow_rest
    from serve.sources.mlflow_common import AliasTarget

    registry = mlflow_rest.RestRegistry(f"http://127.0.0.1:{misbehaving_server.server_address[1]}")
    monkeypatch.setattr(mlflow_rest, "_MAX_JSON_BYTES", 1000)
    misbehaving_server.mode = "big-json"
    with pytest.raises(SourceError, match="answer larger than 1000 bytes"):
        registry.list_files("run1")
    misbehaving_server.mode = "big-file"
    target = AliasTarget("m", "champion", "1", "run1")
    monkeypatch.setattr(mlflow_rest, "_MAX_FILE_BYTES", 4000)
    with pytest.raises(SourceError, match=r"model\.json is larger than 4000 bytes"):
        registry.download_bundle(target, tmp_path / "a")
    assert not list((tmp_path / "a").rglob("*.part"))
    monkeypatch.setattr(mlflow_rest, "_MAX_FILE_BYTES", 10_000)
    monkeypatch.setattr(mlflow_rest, "_MAX_BUNDLE_BYTES", 4000)
    with pytest.raises(SourceError, match="bundle is larger than 4000 bytes"):
        registry.download_bundle(target, tmp_path / "b")
    monkeypatch.setattr(mlflow_rest, "_MAX_BUNDLE_BYTES", 10_000)
    registry.download_bundle(target, tmp_path / "c")
    assert (tmp_path / "c" / "model.json").stat().st_size == 5000
