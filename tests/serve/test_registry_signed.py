"""Signed promotion end to end on a real SQLite MLflow registry, served by the registry source.

The registry is written by the real register and promote code (MLflow, model-signing); the
API reads it without MLflow. A held candidate behind a moved alias, a genuine record replayed
under another version, and a key the API does not trust are each refused while the served
champion keeps answering; a proper promotion and a signed rollback are served.
"""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from fastapi.testclient import TestClient
from serve_support import make_settings, register_bundle

from housing.signing import SigningKey
from serve.main import create_app

pytestmark = pytest.mark.slow

NAME = "housing_price_model"
AUTH = {"Authorization": "Bearer t"}


@pytest.fixture
def signed_registry(tmp_path, monkeypatch, model_bundle_dir, small_train, signing_key):
    """v1 promoted and signed with the session key; v2 registered and held."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("HOUSING_SIGNING_KEY", signing_key.private_pem().decode())
    first = register_bundle(uri, model_bundle_dir, small_train, rmse=39_000, commit="c1")
    assert first.promoted and first.promotion_sequence == 1
    return uri, tmp_path


def _client(uri: str, verify_pem: str, **settings: Any) -> TestClient:
    base = make_settings(
        model_sources=("registry",),
        mlflow_tracking_uri=uri,
        admin_token="t",
        housing_verify_keys=verify_pem,
        **settings,
    )
    return TestClient(create_app(base))


def _mlflow(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _reload(client: TestClient) -> dict[str, Any]:
    return client.post("/api/v1/admin/reload", headers=AUTH).json()


def _still_v1(client: TestClient) -> None:
    info = client.get("/api/v1/model").json()
    assert info["version"] == "1" and info["signed"] is True
    example = client.get("/api/v1/contract").json()["example"]
    assert client.post("/api/v1/predict", json={"instances": [example]}).status_code == 200


def test_held_candidate_replay_and_proper_moves(
    signed_registry, verify_pem, bundle_v2, model_bundle_dir, small_train, signing_key
):
    uri, root = signed_registry
    held = register_bundle(uri, bundle_v2, small_train, rmse=38_000, commit="c2", promote=False)
    assert not held.promoted
    mlflow = _mlflow(uri)
    replay = {"replay_state_dir": root / "replay"}
    with _client(uri, verify_pem, **replay) as client:
        info = client.get("/api/v1/model").json()
        assert info["signed"] is True and info["key_id"] == signing_key.key_id
        assert info["promotion"]["sequence"] == 1 and info["source"] == "registry"

        # 1. Someone with registry write access points champion at the held candidate.
        mlflow.set_registered_model_alias(NAME, "champion", held.version)
        outcome = _reload(client)
        assert outcome["reloaded"] is False
        assert "never promoted with a signed record" in outcome["error"]
        _still_v1(client)

        # 2. v1's genuine record and signature replayed under v3 (the same model bytes, so
        #    every file digest matches): only the record's version gives it away.
        third = register_bundle(
            uri, model_bundle_dir, small_train, rmse=39_000, commit="c1", promote=False
        )
        runs = {v: mlflow.get_model_version(NAME, v).run_id for v in ("1", third.version)}
        arts = {v: next(root.rglob(f"{r}/artifacts")) for v, r in runs.items()}
        shutil.copytree(arts["1"] / "champion", arts[third.version] / "champion")
        mlflow.set_model_version_tag(NAME, third.version, "promotion.record", "champion/000001")
        mlflow.set_registered_model_alias(NAME, "champion", third.version)
        outcome = _reload(client)
        assert outcome["reloaded"] is False
        assert f"version is '1', expected '{third.version}'" in outcome["error"]
        _still_v1(client)

        # 3. A proper promotion of the held candidate is signed and served.
        from housing.registry import promote, rollback

        mlflow.set_registered_model_alias(NAME, "champion", "1")  # undo the tampering
        promote(held.version, "reviewed", tracking_uri=uri, expected_current="1")
        assert _reload(client)["reloaded"] is True
        info = client.get("/api/v1/model").json()
        assert info["version"] == held.version and info["signed"] is True
        assert info["promotion"]["action"] == "promote"
        moved = info["promotion"]["sequence"]

        # 4. Rolling back is a new signed move with a higher sequence: served.
        rollback("bad canary", tracking_uri=uri)
        assert _reload(client)["reloaded"] is True
        info = client.get("/api/v1/model").json()
        assert info["version"] == "1" and info["promotion"]["action"] == "rollback"
        assert info["promotion"]["sequence"] > moved
        assert info["promotion"]["registry"] == f"sqlite:///{(root / 'mlflow.db').resolve()}"
        newest = info["promotion"]["sequence"]

    # 5. The alias pointed back at the held candidate by hand, whose genuine signed record
    #    (its promotion in 3.) is older, and the API restarts with the same
    #    REPLAY_STATE_DIR: refused (serve/replay.py), though the record still verifies.
    mlflow.set_registered_model_alias(NAME, "champion", held.version)
    with _client(uri, verify_pem, **replay) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert (
            f"refused: promotion sequence {moved} (version {held.version}) is older than "
            f"{newest} (version 1)"
        ) in str(ready.json())


def test_a_champion_signed_by_an_untrusted_key_is_refused(signed_registry):
    uri, _ = signed_registry
    from housing.signing.keys import public_pem

    stranger = public_pem(SigningKey.generate().public_key).decode()
    with _client(uri, stranger) as client:
        assert client.get("/ready").status_code == 503
        errors = client.get("/api/v1/model").json()["load_errors"]
        assert any("refused" in e and "not a trusted key" in e for e in errors), errors


def test_export_writes_the_champion_the_local_source_serves(
    signed_registry, tmp_path, verify_pem, monkeypatch
):
    """`housing-registry export` (what the register stage calls) verifies, then writes."""
    from housing.registry.signed import export_champion

    uri, _ = signed_registry
    monkeypatch.setenv("HOUSING_VERIFY_KEYS", verify_pem)
    out = tmp_path / "exported" / "champion"
    record = export_champion(out, tracking_uri=uri)
    assert record is not None and record.version == "1" and record.sequence == 1
    from housing.serving.compiled import can_compile

    compiled = can_compile()  # promotions compile the booster wherever they can
    expected = {"model.json", "model.sig", "promotion.json", "serving"}
    assert {p.name for p in out.iterdir()} == expected | ({"compiled"} if compiled else set())
    settings = make_settings(local_model_dir=out, housing_verify_keys=verify_pem)
    with TestClient(create_app(settings)) as client:
        info = client.get("/api/v1/model").json()
        assert info["source"] == "local" and info["version"] == "1" and info["signed"] is True
        assert info["scorer"] == ("compiled" if compiled else "lightgbm")
    # A key that did not sign it: export refuses and leaves the old directory untouched.
    before = (out / "promotion.json").read_bytes()
    from housing.signing.keys import public_pem

    monkeypatch.setenv("HOUSING_VERIFY_KEYS", public_pem(SigningKey.generate().public_key).decode())
    from housing.registry import RegistryError

    with pytest.raises(RegistryError, match="not a trusted key"):
        export_champion(out, tracking_uri=uri)
    assert (out / "promotion.json").read_bytes() == before
    assert [p.name for p in out.parent.iterdir()] == ["champion"]  # no staging left behind
