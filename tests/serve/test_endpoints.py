"""Health, readiness, model, contract, context, metrics, docs, CORS, admin and model errors."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from serve_support import settings_for

from serve.main import create_app


def test_health_and_ready(client):
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    # The champion's version is its promotion record's (write_champion: version 1).
    assert ready.json() == {"status": "ready", "model_version": "1"}


def test_model_info_reports_identity_and_lineage(client, model_bundle_dir):
    meta = json.loads((model_bundle_dir / "model.json").read_text())
    body = client.get("/api/v1/model").json()
    assert body["name"] == "housing_price_model"
    assert body["source"] == "local"
    assert body["sha256"] == meta["sha256"]
    assert body["data_md5"] == meta["data_md5"]
    assert body["metrics"]["rmse"] == pytest.approx(meta["metrics"]["rmse"])
    assert body["loaded_at"].endswith("Z")
    assert body["last_reload_error"] is None
    for key in ("version", "alias", "run_id", "git_commit"):
        assert key in body


def test_contract_is_the_models(client, model_bundle_dir):
    meta = json.loads((model_bundle_dir / "model.json").read_text())
    assert client.get("/api/v1/contract").json() == meta["contract"]


def test_context_points_are_training_districts(client, small_train):
    body = client.get("/api/v1/context").json()
    assert 0 < body["count"] <= 2000 and body["count"] == len(body["points"])
    assert body["total"] == len(small_train)
    train = {
        (round(a, 2), round(o, 2))
        for a, o in zip(small_train.latitude, small_train.longitude, strict=True)
    }
    points = body["points"]
    matched = sum((round(p["latitude"], 2), round(p["longitude"], 2)) in train for p in points)
    assert matched == len(points)
    values = np.array([p["value"] for p in points])
    lo, hi = small_train.median_house_value.min(), small_train.median_house_value.max()
    assert values.min() >= lo - 1 and values.max() <= hi + 1
    assert client.get("/api/v1/context").json() == body  # deterministic


def test_metrics_count_requests_predictions_and_model(client, example):
    client.post("/api/v1/predict", json={"instances": [example] * 3})
    client.post("/api/v1/predict", json={"instances": []})
    text = client.get("/metrics").text
    assert 'http_requests_total{method="POST",route="/api/v1/predict",status="200"}' in text
    assert 'http_requests_total{method="POST",route="/api/v1/predict",status="422"}' in text
    assert (
        'http_request_duration_seconds_bucket{le="0.005",method="POST",route="/api/v1/pre' in text
    )
    version = client.get("/ready").json()["model_version"]
    assert f'predictions_total{{model_version="{version}"}}' in text
    assert f'version="{version}"' in text and "model_info{" in text
    assert "model_reload_failures_total 0.0" in text
    assert "prediction_log_dropped_total 0.0" in text


def test_openapi_docs(client):
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    paths = set(spec["paths"])
    assert {
        "/health",
        "/ready",
        "/api/v1/predict",
        "/api/v1/model",
        "/api/v1/contract",
        "/api/v1/context",
        "/api/v1/admin/reload",
        "/metrics",
    } <= paths


def test_cors_allows_only_the_streamlit_origin(client):
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    ok = client.options("/api/v1/predict", headers={"Origin": "http://localhost:8501", **preflight})
    assert ok.status_code == 200
    assert ok.headers["access-control-allow-origin"] == "http://localhost:8501"
    assert "access-control-allow-credentials" not in ok.headers
    assert set(ok.headers["access-control-allow-methods"].split(", ")) == {"GET", "POST"}
    evil = client.options("/api/v1/predict", headers={"Origin": "http://evil.example", **preflight})
    assert evil.status_code == 400
    assert "access-control-allow-origin" not in evil.headers
    put = client.options(
        "/api/v1/predict",
        headers={"Origin": "http://localhost:8501", "Access-Control-Request-Method": "PUT"},
    )
    assert put.status_code == 400


def test_no_model_still_starts(tmp_path):
    app = create_app(settings_for(tmp_path / "empty"))
    with TestClient(app) as c:
        assert c.get("/health").status_code == 200
        ready = c.get("/ready")
        assert ready.status_code == 503
        error = ready.json()["error"]
        assert error["code"] == "not_ready" and "no model loaded" in error["message"]
        # A clone with no published champion: only the step that works here is named.
        assert "local: no champion:" in error["message"] and "make pipeline" in error["message"]
        assert "no champion is published here (no empty.dvc)" in error["message"]
        assert "dvc pull" not in error["message"]
    (tmp_path / "empty.dvc").write_text("outs:\n- path: empty\n")  # published: pull it
    with TestClient(create_app(settings_for(tmp_path / "empty"))) as c:
        message = c.get("/ready").json()["error"]["message"]
        assert "`dvc pull empty.dvc` restores the published one" in message
        predict = c.post("/api/v1/predict", json={"instances": [{}]})
        assert predict.status_code == 503 and predict.json()["error"]["code"] == "not_ready"
        assert c.get("/api/v1/contract").status_code == 503
        info = c.get("/api/v1/model").json()
        assert info["version"] is None and info["load_errors"]
        assert "model_loaded 0.0" in c.get("/metrics").text


def test_background_load_answers_health_at_once(champion_dir):
    app = create_app(settings_for(champion_dir, load_in_background=True))
    with TestClient(app) as c:
        assert c.get("/health").status_code == 200
        for _ in range(600):
            if c.get("/ready").status_code == 200:
                break
            time.sleep(0.05)
        assert c.get("/ready").status_code == 200


class _BrokenPredictor:
    def predict(self, numeric, category_idx):
        raise RuntimeError("secret internal detail")


def test_model_error_is_generic_500_with_request_id_in_log(champion_dir, example, caplog):
    app = create_app(settings_for(champion_dir))
    with TestClient(app) as c:
        store = app.state.serve.store
        current = store.current
        broken = _BrokenPredictor()
        from dataclasses import replace

        store.swap(replace(current, predictor=broken))
        with caplog.at_level(logging.ERROR):
            response = c.post("/api/v1/predict", json={"instances": [example]})
    assert response.status_code == 500
    body = response.json()
    request_id = response.headers["x-request-id"]
    assert body["error"]["code"] == "internal_error" and body["request_id"] == request_id
    assert request_id in body["error"]["message"]
    assert "secret" not in response.text and "Traceback" not in response.text
    logged = [r for r in caplog.records if r.exc_info]
    assert logged, "the stack trace belongs in the log"
    assert any("secret internal detail" in str(r.exc_info[1]) for r in logged)


def test_admin_reload_is_disabled_without_token(client):
    response = client.post("/api/v1/admin/reload")
    assert response.status_code == 404 and response.json()["error"]["code"] == "disabled"


def test_admin_reload_needs_the_bearer_token(model_bundle_dir, bundle_v2, tmp_path: Path):
    from serve_support import copy_bundle

    live = copy_bundle(model_bundle_dir, tmp_path / "live")
    app = create_app(settings_for(live, admin_token="s3cret"))
    with TestClient(app) as c:
        assert c.post("/api/v1/admin/reload").status_code == 401
        wrong = c.post("/api/v1/admin/reload", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        auth = {"Authorization": "Bearer s3cret"}
        same = c.post("/api/v1/admin/reload", headers=auth).json()
        assert same["reloaded"] is False
        copy_bundle(bundle_v2, live, version="2", sequence=2)
        changed = c.post("/api/v1/admin/reload", headers=auth).json()
        assert changed["reloaded"] is True and changed["model_version"] != same["model_version"]
        assert c.get("/ready").json()["model_version"] == changed["model_version"]
        assert "model_reloads_total 1.0" in c.get("/metrics").text


def test_model_info_reports_max_batch(champion_dir):
    with TestClient(create_app(settings_for(champion_dir, max_batch=37))) as c:
        assert c.get("/api/v1/model").json()["max_batch"] == 37


class _NonFinitePredictor:
    """The real predictor, with one price turned into NaN or infinity (a broken model)."""

    def __init__(self, real, value: float) -> None:
        self.real, self.value = real, value

    def predict(self, numeric, category_idx):
        prices = np.array(self.real.predict(numeric, category_idx), dtype=float)
        prices[-1] = self.value
        return prices


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
@pytest.mark.parametrize("count", [1, 3, 100])  # 100: scored in a worker thread
def test_non_finite_prediction_is_500_with_request_id(champion_dir, example, value, count):
    from dataclasses import replace

    app = create_app(settings_for(champion_dir))
    with TestClient(app) as c:
        store = app.state.serve.store
        store.swap(
            replace(store.current, predictor=_NonFinitePredictor(store.current.predictor, value))
        )
        response = c.post("/api/v1/predict", json={"instances": [example] * count})
    assert response.status_code == 500, response.text
    body = response.json()
    assert body["error"]["code"] == "internal_error" and "non-finite" in body["error"]["message"]
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["request_id"] in body["error"]["message"]


def test_admin_reload_answers_503_when_the_model_lock_is_held(champion_dir):
    app = create_app(settings_for(champion_dir, admin_token="s3cret", reload_timeout_s=0.3))
    auth = {"Authorization": "Bearer s3cret"}
    with TestClient(app) as c:
        lock = app.state.serve.store._lock
        assert lock.acquire(timeout=5)  # e.g. a slow registry download in the reloader
        try:
            # The lock stays held for the whole call: an answer at all means the reload gave
            # up on it (after reload_timeout_s) instead of waiting.
            response = c.post("/api/v1/admin/reload", headers=auth)
        finally:
            lock.release()
        assert response.status_code == 503 and response.headers["retry-after"] == "5"
        error = response.json()["error"]
        assert error["code"] == "reload_busy" and "model lock" in error["message"]
        assert c.post("/api/v1/admin/reload", headers=auth).json()["reloaded"] is False


def test_admin_reload_answers_503_when_the_check_takes_too_long(champion_dir, monkeypatch):
    app = create_app(settings_for(champion_dir, admin_token="s3cret", reload_timeout_s=0.3))
    with TestClient(app) as c:
        source = app.state.serve.store.sources[0]
        real = source.fingerprint

        stalled = threading.Event()

        def slow_fingerprint():  # a stalled network read: answers only once the test says so
            assert stalled.wait(timeout=60), "the test never released the stalled source"
            return real()

        monkeypatch.setattr(source, "fingerprint", slow_fingerprint)
        response = c.post("/api/v1/admin/reload", headers={"Authorization": "Bearer s3cret"})
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "reload_timeout" and "RELOAD_TIMEOUT_S=0.3" in error["message"]
        assert c.get("/health").status_code == 200
        stalled.set()  # the abandoned check now finishes in its thread and frees the lock
        assert app.state.serve.store._lock.acquire(timeout=30)
        app.state.serve.store._lock.release()
