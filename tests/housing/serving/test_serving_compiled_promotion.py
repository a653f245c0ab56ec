"""Promotion compiles the champion's booster (unless HOUSING_COMPILE_PREDICTOR=0) and the
export carries it: a real SQLite MLflow registry, a real LightGBM bundle, a signing key.

The library is built at the signing of the move, logged beside the record it is signed in
(``champion/<seq>/compiled/``), and the exported champion holds it, verified by the
signature and used by the loader.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from housing.registry.records import RegistryError
from housing.registry.signed import (
    COMPILE_ENV,
    RECORD_TAG,
    compile_at_promotion,
    export_version,
    sign_promotion,
)
from housing.serving import compiled, load_serving
from housing.signing import KeyRing, verify

NAME = "housing_price_model"


@pytest.fixture
def registry(tmp_path: Path, model_bundle_dir: Path, monkeypatch):
    """A SQLite registry holding the session's LightGBM bundle as version 1."""
    from housing.registry.tracking import make_client

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = make_client(uri)
    experiment = client.create_experiment("compiled", artifact_location=str(tmp_path / "art"))
    run = client.create_run(experiment)
    for item in ("model.json", "serving"):
        path = model_bundle_dir / item
        if path.is_dir():
            client.log_artifacts(run.info.run_id, str(path), f"bundle/{item}")
        else:
            client.log_artifact(run.info.run_id, str(path), "bundle")
    client.set_terminated(run.info.run_id)
    client.create_registered_model(NAME)
    meta = json.loads((model_bundle_dir / "model.json").read_text())
    version = client.create_model_version(
        NAME,
        f"runs:/{run.info.run_id}/bundle",
        run.info.run_id,
        tags={"data_md5": meta["data_md5"]},
    )
    return client, str(version.version)


def _promote(client, version: str, signing_key) -> dict[str, str]:
    tags = sign_promotion(
        client,
        NAME,
        version,
        seq=1,
        action="manual",
        reason="compiled predictor test",
        who="pytest",
        previous=None,
        key=signing_key,
    )
    client.set_model_version_tag(NAME, version, RECORD_TAG, tags[RECORD_TAG])
    return tags


def test_promotion_compiles_by_default_and_the_export_carries_it_signed(
    registry, signing_key, verify_pem, tmp_path, monkeypatch
):
    client, version = registry
    monkeypatch.delenv(COMPILE_ENV, raising=False)
    monkeypatch.setenv(compiled.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("HOUSING_VERIFY_KEYS", verify_pem)
    tags = _promote(client, version, signing_key)
    run_id = client.get_model_version(NAME, version).run_id
    logged = {a.path for a in client.list_artifacts(run_id, f"{tags[RECORD_TAG]}/compiled")}
    assert logged == {f"{tags[RECORD_TAG]}/compiled/{n}" for n in ("compiled.json", "predictor.so")}

    out = tmp_path / "champion"
    record = export_version(client, NAME, version, out)
    assert {"compiled/predictor.so", "compiled/compiled.json"} <= set(record.files)
    assert verify(out, KeyRing.from_settings(verify_pem, "")).signed
    model = load_serving(out, expected_sha256=record.serving_sha256)
    assert model.scorer == "compiled"
    meta = json.loads((out / "compiled" / "compiled.json").read_text())
    assert meta["checked"]["probe"]["max_rel_diff"] <= 1e-9
    # Kept by content: the same booster moved again is not compiled again.
    cached = list((tmp_path / "cache").glob("*.so"))
    assert [p.read_bytes() for p in cached] == [(out / "compiled" / "predictor.so").read_bytes()]

    def no_compiler(*_args, **_kwargs):
        raise AssertionError("compiled again")

    monkeypatch.setattr(compiled, "build_library", no_compiler)
    again = sign_promotion(
        client, NAME, version, seq=2, action="rollback", reason="again", who="pytest",
        previous=version, key=signing_key,
    )  # fmt: skip
    logged = {a.path for a in client.list_artifacts(run_id, f"{again[RECORD_TAG]}/compiled")}
    assert len(logged) == 2


def test_a_cached_library_that_fails_its_checks_is_rebuilt(
    model_bundle_dir, tmp_path, monkeypatch, caplog
):
    """The cache is a file anyone with the account can write: its bytes prove nothing."""
    monkeypatch.setenv(compiled.CACHE_ENV, str(tmp_path / "cache"))
    text = (model_bundle_dir / "serving" / "booster.txt").read_text()
    first = compiled.compiled_files(text)[compiled.LIBRARY]
    (entry,) = (tmp_path / "cache").glob("*.so")
    entry.write_bytes(b"not a library")
    assert compiled.compiled_files(text)[compiled.LIBRARY] == first
    assert "refused" in caplog.text
    assert entry.read_bytes() == first


def test_no_cache_when_it_is_switched_off(model_bundle_dir, tmp_path, monkeypatch):
    monkeypatch.setenv(compiled.CACHE_ENV, "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compiled.cache_dir() is None
    compiled.compiled_files((model_bundle_dir / "serving" / "booster.txt").read_text())
    assert not any(tmp_path.iterdir())


def test_with_the_setting_at_zero_promotion_compiles_nothing(
    registry, signing_key, tmp_path, monkeypatch
):
    client, version = registry
    monkeypatch.setenv(COMPILE_ENV, "0")
    monkeypatch.delenv("HOUSING_VERIFY_KEYS", raising=False)
    _promote(client, version, signing_key)
    out = tmp_path / "champion"
    record = export_version(client, NAME, version, out)
    assert not (out / "compiled").exists()
    assert not any(name.startswith("compiled/") for name in record.files)
    assert load_serving(out, expected_sha256=record.serving_sha256).scorer == "lightgbm"


@pytest.mark.parametrize(
    ("value", "expected"), [("", True), ("0", False), ("no", False), ("1", True), ("true", True)]
)
def test_the_setting_reads_one_or_zero(value, expected):
    assert compile_at_promotion({COMPILE_ENV: value}) is expected


def test_a_bad_setting_is_refused_in_one_line():
    with pytest.raises(RegistryError, match="HOUSING_COMPILE_PREDICTOR must be 1 or 0"):
        compile_at_promotion({COMPILE_ENV: "maybe"})
