"""Only a signed champion is served: the governance issue's security tests, on the API side.

Each refusal is checked the way an operator sees it: the load or reload fails with one line
naming the reason, nothing is swapped in, and the model already served keeps answering.
The bundles are real (the session's small LightGBM model); keys are fresh EC P-256 pairs.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serve_support import copy_bundle, settings_for

from housing.signing import SigningKey
from housing.signing.keys import public_pem
from serve.main import create_app

AUTH = {"Authorization": "Bearer t"}


def _pem(key: SigningKey) -> str:
    return public_pem(key.public_key).decode()


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _swap_in(src: Path, live: Path) -> None:
    """Replace the served directory with ``src`` in one rename (as export does)."""
    staging = live.with_name(".incoming")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(src, staging)
    shutil.rmtree(live)
    staging.rename(live)


@pytest.fixture
def served(tmp_path, model_bundle_dir, signing_key, verify_pem):
    """An app serving a signed champion (v1, sequence 5) with its key trusted."""
    live = copy_bundle(model_bundle_dir, tmp_path / "live", key=signing_key, sequence=5)
    app = create_app(settings_for(live, admin_token="t", housing_verify_keys=verify_pem))
    with TestClient(app) as client:
        info = client.get("/api/v1/model").json()
        assert info["signed"] is True and info["promotion"]["sequence"] == 5
        yield client, live


def _still_signed_and_pricing(client: TestClient) -> None:
    assert client.get("/api/v1/model").json()["signed"] is True
    example = client.get("/api/v1/contract").json()["example"]
    assert client.post("/api/v1/predict", json={"instances": [example]}).status_code == 200


def _refused_and_still_serving(client: TestClient, reason: str) -> None:
    before = client.get("/api/v1/model").json()
    outcome = client.post("/api/v1/admin/reload", headers=AUTH).json()
    assert outcome["reloaded"] is False, outcome
    assert "refused" in outcome["error"] and reason in outcome["error"], outcome["error"]
    after = client.get("/api/v1/model").json()
    assert after["loaded_at"] == before["loaded_at"] and after["signed"] is True
    assert reason in after["last_reload_error"]
    example = client.get("/api/v1/contract").json()["example"]
    assert client.post("/api/v1/predict", json={"instances": [example]}).status_code == 200


def test_a_signed_champion_is_served_and_reported(served, signing_key):
    client, _ = served
    info = client.get("/api/v1/model").json()
    assert info["key_id"] == signing_key.key_id
    assert info["verification"] == "on (1 trusted key)"
    assert info["promotion"]["action"] == "promote" and info["promotion"]["who"] == "pytest"


def _refused_at_start(directory: Path, verify_pem: str, reason: str) -> None:
    """A fresh API on ``directory`` (what a restart sees) refuses it with ``reason``."""
    app = create_app(settings_for(directory, housing_verify_keys=verify_pem))
    with TestClient(app) as client:
        assert client.get("/ready").status_code == 503
        errors = client.get("/api/v1/model").json()["load_errors"]
        assert any("refused" in e and reason in e for e in errors), errors


def test_a_flipped_byte_in_the_record_is_refused(served, tmp_path):
    client, live = served
    bad = copy_bundle(live, tmp_path / "bad")
    _flip(bad / "promotion.json")
    _swap_in(bad, live)
    _refused_and_still_serving(client, "promotion.json was modified")


@pytest.mark.parametrize("victim", ["serving/booster.txt", "serving/interval.json", "model.json"])
def test_a_flipped_byte_in_a_model_file_is_refused_naming_it(served, tmp_path, victim, verify_pem):
    """The record is unchanged, so the reload check sees the same champion and keeps the
    verified copy in memory; any fresh load (a restart) refuses the files."""
    client, live = served
    bad = copy_bundle(live, tmp_path / "bad")
    _flip(bad / victim)
    _swap_in(bad, live)
    assert client.post("/api/v1/admin/reload", headers=AUTH).json()["reloaded"] is False
    _still_signed_and_pricing(client)
    _refused_at_start(live, verify_pem, f"{victim} was modified")


def test_a_signature_by_another_key_is_refused(served, tmp_path, model_bundle_dir):
    client, live = served
    other = copy_bundle(model_bundle_dir, tmp_path / "other", key=SigningKey.generate(), sequence=6)
    _swap_in(other, live)
    _refused_and_still_serving(client, "which is not a trusted key")


def test_an_unsigned_champion_is_refused_when_keys_are_configured(
    served, tmp_path, model_bundle_dir
):
    client, live = served
    _swap_in(copy_bundle(model_bundle_dir, tmp_path / "unsigned", sequence=6), live)
    _refused_and_still_serving(client, "unsigned bundle")


def test_an_older_champion_cannot_come_back_by_replay(
    served, tmp_path, model_bundle_dir, signing_key
):
    """A genuine, validly signed record with a lower sequence (a demoted champion)."""
    client, live = served
    old = copy_bundle(model_bundle_dir, tmp_path / "old", key=signing_key, sequence=4)
    _swap_in(old, live)
    _refused_and_still_serving(client, "sequence 4 is older than the served champion's 5")


def test_a_newer_signed_rollback_is_served(served, tmp_path, bundle_v2, signing_key):
    client, live = served
    newer = copy_bundle(bundle_v2, tmp_path / "v2", key=signing_key, version="2", sequence=6)
    _swap_in(newer, live)
    assert client.post("/api/v1/admin/reload", headers=AUTH).json()["reloaded"] is True
    info = client.get("/api/v1/model").json()
    assert info["version"] == "2" and info["promotion"]["sequence"] == 6


def test_a_record_laid_over_another_models_files_is_refused(
    served, tmp_path, bundle_v2, signing_key, verify_pem
):
    """v1's genuine record and signature over v2's files: the digests give it away."""
    client, live = served
    forged = copy_bundle(bundle_v2, tmp_path / "forged", key=signing_key, sequence=7)
    for name in ("promotion.json", "model.sig"):
        shutil.copy2(live / name, forged / name)
    _swap_in(forged, live)
    assert client.post("/api/v1/admin/reload", headers=AUTH).json()["reloaded"] is False
    _still_signed_and_pricing(client)
    _refused_at_start(live, verify_pem, "was modified")


def test_a_candidate_is_never_served_even_without_keys(model_bundle_dir, caplog):
    """models/ (what the register stage writes before the gates) has no promotion record."""
    app = create_app(settings_for(model_bundle_dir))
    with TestClient(app) as client:
        assert client.get("/ready").status_code == 503
        info = client.get("/api/v1/model").json()
        assert info["version"] is None
        assert any("not a promoted champion" in line for line in info["load_errors"])


def test_unsigned_serving_without_keys_is_reported(champion_dir, caplog):
    caplog.set_level(logging.WARNING, logger="serve.main")
    app = create_app(settings_for(champion_dir))
    with TestClient(app) as client:
        info = client.get("/api/v1/model").json()
        assert info["signed"] is False and info["key_id"] is None
        assert info["verification"] == "off (no keys configured)"
    assert any("signature verification OFF" in r.getMessage() for r in caplog.records)


def test_rotation_two_keys_either_signature_is_served(tmp_path, model_bundle_dir, signing_key):
    new = SigningKey.generate()
    both = _pem(signing_key) + _pem(new)
    live = copy_bundle(model_bundle_dir, tmp_path / "rotated", key=new, sequence=2)
    app = create_app(settings_for(live, housing_verify_keys=both))
    with TestClient(app) as client:
        info = client.get("/api/v1/model").json()
        assert info["signed"] is True and info["key_id"] == new.key_id
        assert info["verification"] == "on (2 trusted keys)"


def test_a_bad_verification_key_fails_start_up_with_one_line(tmp_path):
    from pydantic import ValidationError

    bad = tmp_path / "bad.pub"
    bad.write_text("not a key\n")
    with pytest.raises(ValidationError, match=f"public key file {bad}|{bad}: no '-----BEGIN"):
        settings_for(tmp_path, housing_verify_key_files=(str(bad),))


def test_a_consistently_forged_interval_is_refused_by_the_signature(served, tmp_path, verify_pem):
    """A narrower interval with the manifest and model.json re-hashed to match passes every
    integrity check; only the signature, which covers every file, catches it."""
    import hashlib
    import json

    client, live = served
    bad = copy_bundle(live, tmp_path / "bad")
    interval_path = bad / "serving" / "interval.json"
    interval = json.loads(interval_path.read_text())
    interval.update(log_low=-0.01, log_high=0.01)
    interval_path.write_text(json.dumps(interval))
    manifest_path = bad / "serving" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    raw = interval_path.read_bytes()
    manifest["files"]["interval.json"] = {
        "sha256": hashlib.sha256(raw).hexdigest(),
        "bytes": len(raw),
    }
    manifest_path.write_text(json.dumps(manifest))
    meta = json.loads((bad / "model.json").read_text())
    meta["serving_sha256"] = hashlib.sha256(manifest_path.read_bytes()).hexdigest()
    (bad / "model.json").write_text(json.dumps(meta))
    _swap_in(bad, live)
    assert client.post("/api/v1/admin/reload", headers=AUTH).json()["reloaded"] is False
    _still_signed_and_pricing(client)
    # The refusal names the first modified file (model.json) and counts the other two.
    _refused_at_start(live, verify_pem, "model.json was modified")
    _refused_at_start(live, verify_pem, "(and 2 more)")
