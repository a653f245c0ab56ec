"""POST /api/v1/predict on a real small model: values, normalisation, batches, identity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from serve_support import settings_for

from housing.artifact import load_bundle
from housing.contract import RAW_FEATURES


@pytest.fixture(scope="module")
def full_model(model_bundle_dir: Path):
    return load_bundle(model_bundle_dir).model


def test_prediction_matches_the_full_pipeline(client, example, full_model, small_train):
    rows = small_train[list(RAW_FEATURES)].head(25)
    instances = json.loads(rows.to_json(orient="records"))  # NaN bedrooms become null
    response = client.post("/api/v1/predict", json={"instances": instances})
    assert response.status_code == 200, response.text
    got = np.array([p["predicted_price"] for p in response.json()["predictions"]])
    expected = full_model.predict(rows)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0.01)


def test_every_price_comes_with_its_interval(
    client, example, full_model, small_train, champion_dir
):
    interval = json.loads((champion_dir / "serving" / "interval.json").read_text())
    rows = small_train[list(RAW_FEATURES)].head(40)
    instances = json.loads(rows.to_json(orient="records"))
    for batch in (instances[:1], instances):  # the single-row and the batch paths
        response = client.post("/api/v1/predict", json={"instances": batch})
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert len(predictions) == len(batch)
        for p in predictions:
            assert set(p["interval"]) == {"low", "high", "level"}
            assert p["interval"]["level"] == interval["level"] == 0.9
            assert 0 < p["interval"]["low"] <= p["predicted_price"] <= p["interval"]["high"]
        price = np.array([p["predicted_price"] for p in predictions])
        low = np.array([p["interval"]["low"] for p in predictions])
        high = np.array([p["interval"]["high"] for p in predictions])
        expected = full_model.predict(rows.head(len(batch)))
        np.testing.assert_allclose(low, expected * np.exp(interval["log_low"]), atol=0.01)
        np.testing.assert_allclose(high, expected * np.exp(interval["log_high"]), atol=0.01)
        np.testing.assert_allclose(
            (high - low) / price,
            np.exp(interval["log_high"]) - np.exp(interval["log_low"]),
            rtol=1e-6,
        )


def test_a_large_batch_scored_in_a_worker_thread_has_intervals(client, example):
    body = client.post("/api/v1/predict", json={"instances": [example] * 200}).json()
    assert len(body["predictions"]) == 200
    assert len({(p["interval"]["low"], p["interval"]["high"]) for p in body["predictions"]}) == 1
    first = body["predictions"][0]
    assert first["interval"]["low"] < first["predicted_price"] < first["interval"]["high"]


def test_the_openapi_schema_documents_the_interval(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert "interval" in schemas["PredictionPublic"]["required"]
    assert set(schemas["IntervalPublic"]["required"]) == {"low", "high", "level"}
    example = schemas["PredictResponse"]["examples"][0]["predictions"][0]
    assert example["interval"]["low"] <= example["predicted_price"] <= example["interval"]["high"]


def test_response_names_the_model(client, example, model_bundle_dir):
    meta = json.loads((model_bundle_dir / "model.json").read_text())
    body = client.post("/api/v1/predict", json={"instances": [example]}).json()
    assert body["model_name"] == "housing_price_model"
    assert meta["name"] == body["model_name"]
    assert body["model_version"] == "1"  # the promotion record's version
    assert body["model_alias"] == "champion"  # what the record promoted it as
    assert len(body["predictions"]) == 1
    assert body["predictions"][0]["predicted_price"] > 0


def test_category_is_case_and_whitespace_insensitive(client, example):
    label = example["ocean_proximity"]
    variants = [label, label.lower(), f"  {label.title()}  ", label.replace(" ", "   ")]
    body = client.post(
        "/api/v1/predict",
        json={"instances": [{**example, "ocean_proximity": v} for v in variants]},
    ).json()
    prices = {p["predicted_price"] for p in body["predictions"]}
    assert len(prices) == 1


def test_total_bedrooms_null_or_absent_is_imputed(client, example, full_model):
    absent = {k: v for k, v in example.items() if k != "total_bedrooms"}
    body = client.post(
        "/api/v1/predict", json={"instances": [{**example, "total_bedrooms": None}, absent]}
    ).json()
    first, second = (p["predicted_price"] for p in body["predictions"])
    assert first == second
    frame = pd.DataFrame([{**example, "total_bedrooms": np.nan}])[list(RAW_FEATURES)]
    assert first == pytest.approx(float(full_model.predict(frame)[0]), abs=0.01)


def test_integers_are_numbers(client, example):
    as_ints = {
        k: (round(v) if isinstance(v, float) and k != "median_income" else v)
        for k, v in example.items()
    }
    assert client.post("/api/v1/predict", json={"instances": [as_ints]}).status_code == 200


def test_max_batch_is_accepted(champion_dir, example):
    from fastapi.testclient import TestClient

    from serve.main import create_app

    app = create_app(settings_for(champion_dir, max_batch=7))
    with TestClient(app) as c:
        ok = c.post("/api/v1/predict", json={"instances": [example] * 7})
        over = c.post("/api/v1/predict", json={"instances": [example] * 8})
    assert ok.status_code == 200 and len(ok.json()["predictions"]) == 7
    assert over.status_code == 422
    assert over.json()["error"]["fields"][0]["field"] == "instances"
    assert "at most 7" in over.json()["error"]["fields"][0]["reason"]


def test_request_id_is_echoed_or_made(client, example):
    sent = client.post(
        "/api/v1/predict", json={"instances": [example]}, headers={"X-Request-ID": "abc-123"}
    )
    assert sent.headers["x-request-id"] == "abc-123"
    assert sent.json()["request_id"] == "abc-123"
    made = client.get("/health")
    assert len(made.headers["x-request-id"]) == 32
