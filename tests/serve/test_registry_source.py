"""The registry source on a real SQLite MLflow registry, read without MLflow.

The registry is created by the real register code (housing.registry.log_and_register, which
imports MLflow); the source reads it with sqlite3 only: alias, lineage, reload on an alias
move, tampered artifacts refused, MLflow's schema pinned, and mlflow never imported by a
real uvicorn process serving it.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from serve_support import make_settings, register_bundle, running_uvicorn

from housing.signing import KeyRing
from serve.main import create_app
from serve.sources.base import SourceError
from serve.sources.mlflow_common import SERVING_SHA_TAG, SHA_TAG
from serve.sources.mlflow_sqlite import REQUIRED_SCHEMA, local_artifact_path
from serve.sources.registry import RegistrySource

pytestmark = pytest.mark.slow

# Modules the serving process must not import when it serves from the registry.
NEVER_IMPORTED = ("mlflow", "sklearn", "skops", "pandas")


@pytest.fixture(scope="module")
def registry(tmp_path_factory, model_bundle_dir, small_train):
    root = tmp_path_factory.mktemp("serve-registry")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        reg = register_bundle(uri, model_bundle_dir, small_train, r2=0.88, rmse=39_000, commit="c1")
    return uri, root, reg


def _settings(uri: str, **kw: Any):
    return make_settings(
        model_sources=("registry", "local"),
        mlflow_tracking_uri=uri,
        local_model_dir=Path("/nonexistent"),
        admin_token="tok",
        **kw,
    )


def _source(uri: str, alias: str = "champion") -> RegistrySource:
    return RegistrySource(
        uri, model_name="housing_price_model", alias=alias, context_limit=50, keys=KeyRing({})
    )


def _verified_file(root: Path, run_id: str, tags: dict[str, str]) -> Path:
    """A file whose bytes the version's sha256 tag covers (serving bundle, else the skops)."""
    bundle = next((root / "mlartifacts").rglob(f"{run_id}/artifacts/bundle"))
    if tags.get(SERVING_SHA_TAG):
        return max(
            (p for p in (bundle / "serving").rglob("*") if p.is_file()),
            key=lambda p: p.stat().st_size,
        )
    return bundle / "model.skops"


def test_conventions_match_the_register_code():
    from housing.registry import lookup, signed
    from serve.sources import mlflow_common

    assert mlflow_common.BUNDLE_ARTIFACT_PATH == lookup.BUNDLE_ARTIFACT_PATH
    assert mlflow_common.SHA_TAG == lookup.SHA_TAG
    assert mlflow_common.METRIC_TAG_PREFIX == lookup.METRIC_TAG_PREFIX
    assert mlflow_common.SERVING_SHA_TAG == lookup.SERVING_SHA_TAG
    for alias in ("champion", "challenger"):
        assert mlflow_common.record_tag(alias) == signed.record_tag(alias)


def test_mlflow_schema_has_what_the_reader_uses(registry):
    _uri, root, _ = registry
    conn = sqlite3.connect(root / "mlflow.db")
    try:
        for table, columns in REQUIRED_SCHEMA.items():
            have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            assert set(columns) <= have, (table, set(columns) - have)
        (artifact_uri,) = conn.execute("SELECT artifact_uri FROM runs").fetchone()
    finally:
        conn.close()
    # A SQLite registry keeps run artifacts on local disk, where the reader copies them from.
    assert local_artifact_path(artifact_uri).is_dir()


def test_a_schema_change_fails_naming_what_is_missing(registry, tmp_path):
    _uri, root, _ = registry
    db = tmp_path / "mlflow.db"
    shutil.copyfile(root / "mlflow.db", db)
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE runs RENAME COLUMN artifact_uri TO artifact_location")
        conn.execute("DROP TABLE registered_model_aliases")
    with pytest.raises(SourceError) as err:
        _source(f"sqlite:///{db}").fingerprint()
    message = str(err.value)
    assert "table registered_model_aliases" in message and "runs.artifact_uri" in message
    assert "\n" not in message


def test_fingerprint_is_one_cheap_lookup(registry):
    uri, _, reg = registry
    source = _source(uri)
    version, sha, record = source.fingerprint().split(":")
    assert version == reg.version and len(sha) == 64
    assert record == f"champion/{reg.promotion_sequence:06d}"  # changes with every move
    with pytest.raises(SourceError, match="no version with alias 'nope'"):
        _source(uri, alias="nope").fingerprint()


def test_serves_the_champion_with_lineage(registry):
    uri, _, reg = registry
    with TestClient(create_app(_settings(uri))) as c:
        info = c.get("/api/v1/model").json()
        assert info["source"] == "registry"
        assert info["source_detail"].startswith("registry (sqlite)")
        assert info["version"] == reg.version and info["alias"] == "champion"
        assert info["run_id"] == reg.run_id and info["git_commit"] == "c1"
        assert info["metrics"]["rmse"] == pytest.approx(39_000)
        example = c.get("/api/v1/contract").json()["example"]
        body = c.post("/api/v1/predict", json={"instances": [example]}).json()
        assert body["model_alias"] == "champion" and body["model_version"] == reg.version


def test_alias_move_is_picked_up_by_reload(registry, bundle_v2, small_train):
    uri, root, first = registry
    with TestClient(create_app(_settings(uri))) as c:
        assert c.get("/ready").json()["model_version"] == first.version
        with pytest.MonkeyPatch.context() as mp:
            mp.chdir(root)
            second = register_bundle(uri, bundle_v2, small_train, r2=0.9, rmse=38_000, commit="c2")
        assert second.promoted
        out = c.post("/api/v1/admin/reload", headers={"Authorization": "Bearer tok"}).json()
        assert out == {"reloaded": True, "model_version": second.version, "error": None}
        assert c.get("/api/v1/model").json()["git_commit"] == "c2"
        # Nothing moved since: the next check is a no-op (fingerprints agree).
        out = c.post("/api/v1/admin/reload", headers={"Authorization": "Bearer tok"}).json()
        assert out == {"reloaded": False, "model_version": second.version, "error": None}


def test_tampered_registry_artifact_is_refused(registry):
    uri, root, _ = registry
    conn = sqlite3.connect(root / "mlflow.db")
    (version,) = conn.execute(
        "SELECT version FROM registered_model_aliases WHERE alias = 'champion'"
    ).fetchone()
    (run_id,) = conn.execute(
        "SELECT run_id FROM model_versions WHERE version = ?", (version,)
    ).fetchone()
    tags = dict(
        conn.execute("SELECT key, value FROM model_version_tags WHERE version = ?", (version,))
    )
    conn.close()
    target = _verified_file(root, run_id, tags)
    original = target.read_bytes()
    try:
        target.write_bytes(original[:-10] + b"0123456789")
        with TestClient(create_app(_settings(uri))) as c:
            assert c.get("/ready").status_code == 503
            errors = c.get("/api/v1/model").json()["load_errors"]
            assert any(e.startswith("registry:") and "sha256" in e for e in errors), errors
    finally:
        target.write_bytes(original)


def test_a_wrong_sha_tag_is_refused(registry, tmp_path):
    """The sha256 comes from the registry, not the downloaded files: a changed tag refuses them."""
    _uri, root, _ = registry
    db = tmp_path / "mlflow.db"
    shutil.copyfile(root / "mlflow.db", db)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE model_version_tags SET value = ? WHERE key IN (?, ?)",
            ("0" * 64, SHA_TAG, SERVING_SHA_TAG),
        )
    with pytest.raises(SourceError, match="sha256"):
        _source(f"sqlite:///{db}").load()


def test_artifacts_outside_local_disk_are_refused_in_one_line():
    with pytest.raises(SourceError, match="cannot be read without MLflow"):
        local_artifact_path("s3://bucket/1/abc/artifacts")
    assert local_artifact_path("file:///tmp/x/artifacts") == Path("/tmp/x/artifacts")
    assert local_artifact_path("mlruns/1/abc/artifacts") == Path("mlruns/1/abc/artifacts")


_GUARD = """\
import json, os, runpy, signal, sys

def dump(*_):
    with open(os.environ["MODULES_OUT"], "w") as fh:
        json.dump(sorted(sys.modules), fh)
    sys.exit(0)

# uvicorn restores this handler after its graceful shutdown and re-raises SIGTERM to it.
signal.signal(signal.SIGTERM, dump)
sys.path.insert(0, os.getcwd())  # as `python -m serve` run from the repository would
sys.argv = ["serve"]
runpy.run_module("serve", run_name="__main__")
dump()
"""


def test_real_uvicorn_serves_the_registry_without_importing_mlflow(registry, tmp_path):
    uri, _, _ = registry
    script = tmp_path / "guard.py"
    script.write_text(_GUARD)
    modules_out = tmp_path / "modules.json"
    with running_uvicorn(
        tmp_path,
        [sys.executable, str(script)],
        MLFLOW_TRACKING_URI=uri,
        MODEL_SOURCES="registry",
        MODULES_OUT=str(modules_out),
        LOG_JSON="true",
    ) as server:
        info = httpx.get(f"{server.base_url}/api/v1/model", timeout=10).json()
        assert info["source"] == "registry" and info["source_detail"].startswith(
            "registry (sqlite)"
        )
        example = httpx.get(f"{server.base_url}/api/v1/contract", timeout=10).json()["example"]
        r = httpx.post(
            f"{server.base_url}/api/v1/predict", json={"instances": [example]}, timeout=10
        )
        assert r.status_code == 200, r.text
    modules = set(json.loads(modules_out.read_text()))
    assert "serve.sources.mlflow_sqlite" in modules  # the registry path really ran
    leaked = sorted(m for m in modules if m.split(".")[0] in NEVER_IMPORTED)
    assert not leaked, leaked
