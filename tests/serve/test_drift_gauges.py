"""Live drift (serve/drift.py): the API bins what it scored against its model's reference,
off the request path, and exports the PSI per feature; refusals are counted by field."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient
from serve_support import settings_for

from housing.contract import RAW_FEATURES
from serve.main import create_app

BATCH = 100


def _instances(frame) -> list[dict]:
    rows = frame[list(RAW_FEATURES)].to_dict("records")
    for row in rows:
        if math.isnan(row["total_bedrooms"]):
            row["total_bedrooms"] = None
    return rows


def _send(client, rows) -> None:
    for start in range(0, len(rows), BATCH):
        response = client.post("/api/v1/predict", json={"instances": rows[start : start + BATCH]})
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def traffic(small_train):
    """The training rows themselves (inside the contract by construction), incomes kept
    where x 1.5 still passes it."""
    return small_train[small_train["median_income"] <= 12].reset_index(drop=True)


def _gauge(metrics: str, name: str, feature: str | None = None) -> float:
    label = f'{{feature="{feature}"}}' if feature else ""
    for line in metrics.splitlines():
        if line.startswith(f"{name}{label} "):
            return float(line.split()[-1])
    raise AssertionError(f"{name}{label} not exported")


def test_unchanged_traffic_moves_no_gauge_and_shifted_income_moves_income_alone(
    champion_dir, traffic
):
    settings = settings_for(champion_dir, drift_window=1000, drift_min_instances=500)
    with TestClient(create_app(settings)) as client:
        state = client.app.state.serve
        assert state.feature_log is not None and state.feature_log.path is None  # gauges only
        _send(client, _instances(traffic.iloc[:1000]))
        state.feature_log.flush()
        calm = client.get("/metrics").text
        before = client.get("/api/v1/monitoring").json()["drift"]

        shifted = traffic.iloc[1000:2000].copy()
        shifted["median_income"] *= 1.5
        _send(client, _instances(shifted))
        state.feature_log.flush()
        moved = client.get("/metrics").text
        after = client.get("/api/v1/monitoring").json()["drift"]

    assert _gauge(calm, "drift_window_instances") == 1000
    assert _gauge(calm, "feature_drift_psi", "median_income") < 0.02
    assert before["enough"] and not any(f["drifted"] for f in before["features"].values())
    assert set(before["features"]) == set(RAW_FEATURES)

    assert _gauge(moved, "feature_drift_psi", "median_income") > 0.5
    assert [k for k, f in after["features"].items() if f["drifted"]] == ["median_income"]
    assert _gauge(moved, "prediction_drift_psi") > _gauge(calm, "prediction_drift_psi")


def test_refusals_are_counted_by_field(champion_dir, example):
    with TestClient(create_app(settings_for(champion_dir))) as client:
        bad = [dict(example, median_income=1e6), dict(example, median_income=-1, households=0)]
        response = client.post("/api/v1/predict", json={"instances": bad})
        assert response.status_code == 422
        malformed = client.post(
            "/api/v1/predict", content=b"{", headers={"content-type": "application/json"}
        )
        assert malformed.status_code == 400
        body = client.get("/api/v1/monitoring").json()
        metrics = client.get("/metrics").text
    assert body["refused_by_field"] == {"median_income": 1, "households": 1, "body": 1}
    assert body["predict_requests"] == 2
    assert 'refused_requests_total{field="median_income"} 1.0' in metrics


def test_no_window_no_gauges(champion_dir, example):
    with TestClient(create_app(settings_for(champion_dir, drift_window=0))) as client:
        assert client.post("/api/v1/predict", json={"instances": [example]}).status_code == 200
        body = client.get("/api/v1/monitoring").json()
        assert client.app.state.serve.feature_log is None
    assert body["drift"]["available"] is False
