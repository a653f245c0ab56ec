"""The real API serving a signed champion that carries its compiled predictor.

The app verifies the signature (the library included), loads the library and answers
single rows and batches with the skops pipeline's prices; a champion whose library was
swapped after signing is refused whole, as any tampered file is.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from housing.artifact import load_bundle
from housing.contract import RAW_FEATURES
from housing.signing import PromotionRecord, build_champion
from serve.config import Settings
from serve.main import create_app


def _settings(directory: Path, verify_pem: str) -> Settings:
    return Settings(
        model_sources=("local",),
        local_model_dir=directory,
        wandb_mode="disabled",
        load_in_background=False,
        reload_interval_s=0.0,
        log_json=False,
        access_log=False,
        mlflow_tracking_uri=None,
        gcs_bucket=None,
        admin_token=None,
        housing_verify_keys=verify_pem,
    )


@pytest.fixture(scope="module")
def compiled_champion(tmp_path_factory, model_bundle_dir: Path, signing_key) -> Path:
    meta = json.loads((model_bundle_dir / "model.json").read_text())
    record = PromotionRecord(
        name="housing_price_model",
        version="1",
        alias="champion",
        action="promote",
        data_md5=str(meta["data_md5"]),
        git_commit="test",
        decision="compiled predictor API test",
        sequence=1,
        timestamp="2026-12-07T00:00:00+00:00",
        who="pytest",
    )
    dest = tmp_path_factory.mktemp("compiled-api") / "champion"
    build_champion(
        model_bundle_dir,
        dest,
        record,
        signing_key,
        include=("model.json", "serving"),
        compiled=True,
    )
    assert (dest / "compiled" / "predictor.so").is_file()
    return dest


@pytest.fixture(scope="module")
def client(compiled_champion: Path, verify_pem: str) -> Iterator[TestClient]:
    # The keys come through the API's settings alone, not the environment: the API passes
    # its own verification to the loader, which loads the library only for a signed champion.
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("HOUSING_VERIFY_KEYS", raising=False)
        mp.delenv("HOUSING_VERIFY_KEY_FILES", raising=False)
        with TestClient(create_app(_settings(compiled_champion, verify_pem))) as test_client:
            yield test_client


def test_the_api_scores_with_the_library_and_the_pipelines_prices(
    client, model_bundle_dir, small_train
):
    served = client.app.state.serve.store.current
    assert served is not None and served.identity.signed
    assert served.predictor.scorer == "compiled"
    assert client.get("/api/v1/model").json()["scorer"] == "compiled"
    model = load_bundle(model_bundle_dir).model
    frame = small_train[list(RAW_FEATURES)]
    rows = pd.concat([frame.head(55), frame[frame["total_bedrooms"].isna()].head(5)])
    instances = json.loads(rows.to_json(orient="records"))  # NaN bedrooms become null
    assert sum(r["total_bedrooms"] is None for r in instances) == 5
    for batch in (instances[:1], instances):  # the single-row and the batch paths
        response = client.post("/api/v1/predict", json={"instances": batch})
        assert response.status_code == 200, response.text
        got = np.array([p["predicted_price"] for p in response.json()["predictions"]])
        np.testing.assert_allclose(got, model.predict(rows.head(len(batch))), rtol=1e-9, atol=0.01)


def test_a_library_swapped_after_signing_is_refused(compiled_champion, verify_pem, tmp_path):
    directory = tmp_path / "champion"
    shutil.copytree(compiled_champion, directory)
    library = directory / "compiled" / "predictor.so"
    library.write_bytes(library.read_bytes()[:-1] + b"\1")
    with TestClient(create_app(_settings(directory, verify_pem))) as test_client:
        assert test_client.app.state.serve.store.current is None
        response = test_client.post("/api/v1/predict", json={"instances": []})
        assert response.status_code in (422, 503)
        errors = " ".join(test_client.app.state.serve.store.load_errors)
        assert "predictor.so" in errors, errors


def test_the_gcs_source_brings_the_library_the_record_lists(
    compiled_champion, verify_pem, gcs_emulator, tmp_path
):
    """Published as scripts/publish_model.py publishes it (every file, the record last), the
    champion read back from GCS scores with its compiled library."""
    from housing.signing import KeyRing
    from serve.sources.gcs import GcsSource

    fs = gcs_emulator.filesystem()
    fs.mkdir("compiled")
    files = sorted(p for p in compiled_champion.rglob("*") if p.is_file())
    record = compiled_champion / "promotion.json"
    for path in [p for p in files if p != record] + [record]:
        rel = path.relative_to(compiled_champion).as_posix()
        fs.pipe_file(f"compiled/prod/{rel}", path.read_bytes())
    assert fs.exists("compiled/prod/compiled/predictor.so")
    source = GcsSource(
        "compiled",
        "prod",
        endpoint_url=gcs_emulator.endpoint,
        project=None,
        model_name="housing_price_model",
        context_limit=10,
        keys=KeyRing.from_pem(verify_pem),
    )
    loaded = source.load()
    assert loaded.identity.signed and loaded.identity.source == "gcs"
    assert loaded.serving.scorer == "compiled"
