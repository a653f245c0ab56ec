"""The registry's challenger, signed at every move and loaded by the API like the champion.

A real SQLite MLflow registry written by the real register and promote code (MLflow,
model-signing, the session key): v1 promoted, v2 held, so v2 takes ``challenger`` by a
signed move. The API's registry source (no MLflow) loads it verified, refuses it tampered,
unsigned, signed by a stranger or replayed from a champion record, and says "no challenger"
once promoting v2 has moved both aliases, each by a signed record.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from serve_support import make_settings, register_bundle

from housing.signing import KeyRing, SigningKey
from housing.signing.keys import public_pem
from serve.sources.base import NoAliasError, SourceError
from serve.sources.build import build_challenger_source
from serve.sources.registry import RegistrySource

pytestmark = pytest.mark.slow

NAME = "housing_price_model"
# What a champion record's `extra` held before the challenger was signed: unchanged.
CHAMPION_EXTRA = {"mode", "previous_champion", "run_id", "model_skops_sha256", "registry"}


@pytest.fixture(scope="module")
def registry(tmp_path_factory, model_bundle_dir, bundle_v2, small_train, signing_key):
    """v1 champion (promotion #1), v2 held and so the challenger (challenger move #1)."""
    root = tmp_path_factory.mktemp("challenger")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("HOUSING_SIGNING_KEY", signing_key.private_pem().decode())
        first = register_bundle(uri, model_bundle_dir, small_train, rmse=39_000, commit="c1")
        held = register_bundle(uri, bundle_v2, small_train, rmse=38_000, commit="c2", promote=False)
    assert first.promoted and not held.promoted
    return uri, root, first, held


def _copy(uri: str, tmp_path: Path) -> str:
    """A private copy of the module's database (the run artifacts stay shared)."""
    src = Path(uri.removeprefix("sqlite:///"))
    shutil.copyfile(src, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def _challenger(uri: str, verify_pem: str | None) -> RegistrySource:
    settings = make_settings(mlflow_tracking_uri=uri, housing_verify_keys=verify_pem)
    source = build_challenger_source(settings)
    assert source is not None
    return source


def _sql(uri: str, statement: str, *args: Any) -> None:
    with sqlite3.connect(uri.removeprefix("sqlite:///")) as conn:
        conn.execute(statement, args)


def _run_dir(root: Path, run_id: str) -> Path:
    return next((root / "mlartifacts").rglob(f"{run_id}/artifacts"))


def test_no_tracking_uri_means_no_challenger_source():
    assert build_challenger_source(make_settings(mlflow_tracking_uri=None)) is None


def test_a_tracking_server_without_a_challenger_means_no_challenger(monkeypatch):
    """The REST reader on the answer MLflow's server gives (its own exception, serialised by
    its handler: HTTP 400, INVALID_PARAMETER_VALUE) for a missing alias."""
    import io
    import urllib.error
    import urllib.request

    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

    missing = MlflowException(
        "Registered model alias challenger not found.", INVALID_PARAMETER_VALUE
    )

    def answer(request, timeout, context):
        body = io.BytesIO(missing.serialize_as_json().encode())
        code = missing.get_http_status_code()
        raise urllib.error.HTTPError(request.full_url, code, "error", {}, body)

    monkeypatch.setattr(urllib.request, "urlopen", answer)
    source = _challenger("http://127.0.0.1:9", None)
    with pytest.raises(NoAliasError, match=r"^no challenger: model .* \(HTTP 400: .*not found"):
        source.load()


def test_the_held_version_is_the_challenger_by_a_signed_record(
    registry, verify_pem, monkeypatch, signing_key
):
    from housing.registry.signed import verify_alias

    uri, root, first, held = registry
    assert held.challenger_sequence == 1 and first.promotion_sequence == 1
    monkeypatch.setenv("HOUSING_VERIFY_KEYS", verify_pem)
    check = verify_alias(held.version, "challenger", tracking_uri=uri)
    assert check.verified and check.signed, check.detail
    record = check.record
    assert (record.name, record.version, record.alias) == (NAME, held.version, "challenger")
    assert (record.action, record.sequence, record.extra["mode"]) == ("promote", 1, "hold")
    assert record.decision == held.decision.reason
    # The champion's record is as before: its own sequence, its own fields.
    champion = json.loads(
        (_run_dir(root, first.run_id) / "champion/000001/promotion.json").read_text()
    )
    assert champion["alias"] == "champion" and champion["sequence"] == 1
    assert set(champion["extra"]) == CHAMPION_EXTRA
    # A stranger's key does not verify it.
    monkeypatch.setenv("HOUSING_VERIFY_KEYS", public_pem(SigningKey.generate().public_key).decode())
    check = verify_alias(held.version, "challenger", tracking_uri=uri)
    assert not check.verified and "REFUSED" in check.detail and "not a trusted key" in check.detail


def test_the_api_loads_the_challenger_verified_like_the_champion(registry, verify_pem, signing_key):
    uri, _, first, held = registry
    source = _challenger(uri, verify_pem)
    assert source.describe().startswith(f"models:/{NAME}@challenger at ")
    version, _sha, record = source.fingerprint().split(":")
    assert (version, record) == (held.version, "challenger/000001")
    model = source.load()
    identity = model.identity
    assert (identity.version, identity.alias, identity.source) == (
        held.version,
        "challenger",
        "registry",
    )
    assert identity.signed and identity.key_id == signing_key.key_id
    assert identity.promotion_sequence == 1 and identity.git_commit == "c2"
    assert identity.promotion["action"] == "promote"
    # The champion source beside it still serves v1 at promotion #1.
    champion = RegistrySource(
        uri, model_name=NAME, alias="champion", context_limit=50, keys=source.keys
    ).load()
    assert (champion.identity.version, champion.identity.promotion_sequence) == (first.version, 1)


def test_a_stranger_key_a_missing_record_or_a_champion_record_are_refused(
    registry, tmp_path, verify_pem
):
    uri, root, first, _ = registry
    stranger = public_pem(SigningKey.generate().public_key).decode()
    with pytest.raises(SourceError, match=r"refused: .*not a trusted key"):
        _challenger(uri, stranger).load()

    # The alias pointed by hand at a version that never held it with a record.
    copy = _copy(uri, tmp_path)
    _sql(
        copy,
        "UPDATE registered_model_aliases SET version = ? WHERE alias = 'challenger'",
        first.version,
    )
    with pytest.raises(SourceError, match=r"has no challenger\.record tag: it was never made"):
        _challenger(copy, verify_pem).load()
    # ... nor will v1's genuine champion record pass for a challenger record.
    run = _run_dir(root, first.run_id)
    shutil.copytree(run / "champion/000001", run / "challenger/000009", dirs_exist_ok=True)
    _sql(
        copy,
        "INSERT INTO model_version_tags (key, value, name, version) VALUES (?, ?, ?, ?)",
        "challenger.record",
        "challenger/000009",
        NAME,
        first.version,
    )
    with pytest.raises(SourceError, match="alias is 'champion', expected 'challenger'"):
        _challenger(copy, verify_pem).load()
    # Without keys (development) a record is still required and checked, only not signed.
    assert _challenger(uri, None).load().identity.signed is False


def test_a_tampered_challenger_is_refused(registry, verify_pem):
    uri, root, _, held = registry
    served = _run_dir(root, held.run_id) / "bundle" / "serving"
    victim = max((p for p in served.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    original = victim.read_bytes()
    try:
        victim.write_bytes(original[:-10] + b"0123456789")
        with pytest.raises(SourceError, match=r"refused: .*was modified"):
            _challenger(uri, verify_pem).load()
    finally:
        victim.write_bytes(original)


def test_promoting_the_challenger_moves_both_aliases_by_signed_records(
    registry, tmp_path, verify_pem, monkeypatch, signing_key
):
    from housing.registry import promote
    from housing.registry.history import CHALLENGER_LOG, read_events
    from housing.registry.tracking import make_client

    uri, _, _, held = registry
    copy = _copy(uri, tmp_path)
    monkeypatch.setenv("HOUSING_SIGNING_KEY", signing_key.private_pem().decode())
    monkeypatch.setenv("HOUSING_VERIFY_KEYS", verify_pem)
    info = promote(held.version, "the shadow agreed", tracking_uri=copy, who="ana")
    assert info.aliases == ["champion"] and info.tags["promotion.sequence"] == "2"
    assert info.tags["promotion.signed"] == "true"
    assert (info.tags["challenger.action"], info.tags["challenger.sequence"]) == ("drop", "2")
    assert info.tags["challenger.signed"] == "true"
    client = make_client(copy)
    events, _ = read_events(client, NAME)
    assert [(e.seq, e.version) for e in events] == [(1, "1"), (2, held.version)]
    moves, _ = read_events(client, NAME, CHALLENGER_LOG)
    assert [(e.seq, e.action, e.version) for e in moves] == [
        (1, "hold", held.version),
        (2, "drop", held.version),
    ]
    assert moves[1].why == "promoted to champion (promotion #2)" and moves[1].key_id

    with pytest.raises(NoAliasError, match=r"no challenger: .* has no version with alias"):
        _challenger(copy, verify_pem).load()
    champion = RegistrySource(
        copy, model_name=NAME, alias="champion", context_limit=50, keys=KeyRing.from_env()
    ).load()
    assert (champion.identity.version, champion.identity.promotion_sequence) == (
        held.version,
        2,
    )
    # The alias pointed back at v2 by hand: its latest challenger record is the drop.
    client.set_registered_model_alias(NAME, "challenger", held.version)
    with pytest.raises(SourceError, match=r"was dropped from 'challenger' \(move #2\)"):
        _challenger(copy, verify_pem).load()


def _instances(frame, n: int) -> list[dict[str, Any]]:
    rows = frame.drop(columns="median_house_value").head(n).to_dict("records")
    for row in rows:  # JSON has no NaN: a missing bedroom count is null
        if row["total_bedrooms"] != row["total_bedrooms"]:
            row["total_bedrooms"] = None
    return rows


def test_the_api_shadows_the_challenger_and_the_registry_shows_the_evidence(
    registry, tmp_path, verify_pem, model_bundle_dir, small_train
):
    """The whole flow as an operator runs it: the API (real uvicorn, SHADOW=true) serves the
    registry's champion v1 and shadows its signed challenger v2; the agreement reaches
    /metrics, /api/v1/monitoring and the feature log; housing-monitor summarises it and
    `housing-registry show --alias challenger` prints it as v2's evidence."""
    import subprocess
    import sys
    import time

    import httpx
    from serve_support import REPO_ROOT, running_uvicorn

    uri, _root, first, held = registry
    uri = _copy(uri, tmp_path)  # the API only reads; a copy keeps the module's untouched
    log_dir = tmp_path / "features"
    instances = _instances(small_train, 300)
    with running_uvicorn(
        tmp_path,
        MLFLOW_TRACKING_URI=uri,
        MODEL_SOURCES="registry",
        HOUSING_VERIFY_KEYS=verify_pem,
        SHADOW="true",
        FEATURE_LOG_DIR=str(log_dir),
        RELOAD_INTERVAL_S="0",
    ) as server:
        deadline = time.monotonic() + 60
        while not httpx.get(f"{server.base_url}/api/v1/monitoring").json()["shadow"]["loaded"]:
            assert time.monotonic() < deadline, server.logs()[-3000:]
            time.sleep(0.2)
        for start in range(0, len(instances), 100):
            answer = httpx.post(
                f"{server.base_url}/api/v1/predict",
                json={"instances": instances[start : start + 100]},
                timeout=30,
            )
            assert answer.status_code == 200, answer.text
            assert answer.json()["model_version"] == first.version
        while (shadow := httpx.get(f"{server.base_url}/api/v1/monitoring").json()["shadow"])[
            "instances"
        ] < len(instances):
            assert time.monotonic() < deadline, shadow
            time.sleep(0.2)
        metrics = httpx.get(f"{server.base_url}/metrics").text

    assert shadow["challenger_version"] == held.version and shadow["signed"] is True
    assert shadow["champion_version"] == first.version
    # Two different models (bundle_v2 is fitted with other settings): they disagree a little.
    assert 0 < shadow["mean_rel_diff"] < 0.5
    assert 0 < shadow["inside_interval_share"] <= 1
    assert f"shadow_scored_total {float(len(instances))}" in metrics
    assert f'shadow_info{{signed="true",version="{held.version}"}} 1.0' in metrics
    lines = [json.loads(line) for line in (log_dir / "features.jsonl").read_text().splitlines()]
    assert len(lines) == len(instances)
    assert {(r["version"], r["shadow_version"]) for r in lines} == {(first.version, held.version)}
    assert all(r["shadow_price"] > 0 for r in lines)

    bin_dir = Path(sys.executable).parent
    out = tmp_path / "monitoring"
    monitor = subprocess.run(
        [
            bin_dir / "housing-monitor",
            "--log-dir", str(log_dir),
            "--champion", str(model_bundle_dir),
            "--out", str(out),
            "--params", str(REPO_ROOT / "params.yaml"),
        ],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    # 300 instances are under monitor.min_instances: nothing is judged, nothing alerts.
    assert monitor.returncode == 0, monitor.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["shadow"]["challenger_version"] == held.version
    assert summary["shadow"]["instances"] == len(instances)
    assert summary["shadow"]["mean_rel_diff"] == pytest.approx(shadow["mean_rel_diff"], rel=1e-6)

    show = subprocess.run(
        [
            bin_dir / "housing-registry", "show", "--alias", "challenger",
            "--tracking-uri", uri, "--evidence", str(out / "summary.json"),
        ],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**os.environ, "HOUSING_VERIFY_KEYS": verify_pem},
    )  # fmt: skip
    assert show.returncode == 0, show.stderr
    assert f"{len(instances)} scored by both, against champion {first.version}" in show.stdout
    assert "signed by key" in show.stdout and "verified" in show.stdout
