"""The page through AppTest against the real API (uvicorn, a small real model bundle).

These cover what a stub would hide: the real contract, real prices, the real /api/v1/model
(including ``max_batch``) and real error bodies. The stub tests keep only the failures a real
API cannot produce on demand (not ready, slow, down mid-batch, 500, an old API without
``max_batch``, credentials in its answers).
"""

from __future__ import annotations

import re

import httpx
import pandas as pd
import pytest
from app_servers import REAL_API_MAX_BATCH

pytestmark = pytest.mark.slow


def _get(url: str, path: str) -> dict:
    return httpx.get(f"{url}{path}", timeout=30).raise_for_status().json()


def _direct_predictions(url: str, instances: list[dict]) -> list[dict]:
    """What the API itself answers for these instances (asked in allowed batch sizes)."""
    predictions: list[dict] = []
    for start in range(0, len(instances), REAL_API_MAX_BATCH):
        chunk = instances[start : start + REAL_API_MAX_BATCH]
        body = httpx.post(f"{url}/api/v1/predict", json={"instances": chunk}, timeout=30)
        predictions += body.raise_for_status().json()["predictions"]
    return predictions


def _direct_prices(url: str, instances: list[dict]) -> list[float]:
    return [p["predicted_price"] for p in _direct_predictions(url, instances)]


def _predict_requests(url: str) -> dict[str, float]:
    """POST /api/v1/predict requests so far, by status, from the API's own /metrics."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    found = re.findall(
        r'^http_requests_total\{(?=[^}]*route="/api/v1/predict")(?=[^}]*method="POST")'
        r'[^}]*status="(\d+)"[^}]*\}\s+([\d.e+]+)$',
        text,
        re.M,
    )
    return {status: float(value) for status, value in found}


def _price_metric(at) -> str:
    return next(m.value for m in at.metric if m.label == "Predicted median house value")


def test_form_follows_the_real_contract(real_api, make_app):
    contract = _get(real_api, "/api/v1/contract")
    at = make_app(real_api).run()
    assert not at.exception
    for name, rule in contract["features"].items():
        if rule["dtype"] == "category":
            box = at.selectbox(key=f"input_{name}")
            assert box.options == rule["categories"]
        else:
            field = at.number_input(key=f"input_{name}")
            assert (field.min, field.max) == (rule["min"], rule["max"])
            assert field.value == pytest.approx(contract["example"][name])


def test_price_and_identity_are_the_apis_own(real_api, make_app):
    contract = _get(real_api, "/api/v1/contract")
    model = _get(real_api, "/api/v1/model")
    at = make_app(real_api).run()
    at.number_input(key="input_median_income").set_value(2.5)
    at.checkbox(key="unknown_total_bedrooms").check()
    at.form_submit_button[0].click().run()
    assert not at.exception
    instance = dict(contract["example"], median_income=2.5, total_bedrooms=None)
    (direct,) = _direct_predictions(real_api, [instance])
    assert _price_metric(at) == f"${direct['predicted_price']:,.0f}"
    low, high, level = (direct["interval"][k] for k in ("low", "high", "level"))
    shown = next(m for m in at.metric if m.label.endswith("prediction interval"))
    assert shown.label == f"{level * 100:g}% prediction interval"
    assert shown.value == f"${low:,.0f} to ${high:,.0f}"
    identity = next(m.value for m in at.markdown if m.value.startswith("Priced by"))
    assert f"**{model['name']}** version `{model['version']}`" in identity
    context = _get(real_api, "/api/v1/context")
    layers = [layer for layer in _deck_layers(at) if layer["id"] == "training-districts"]
    assert len(layers[0]["data"]) == context["count"]


def _deck_layers(at) -> list[dict]:
    import json

    (chart,) = at.get("deck_gl_json_chart")
    return json.loads(chart.proto.json)["layers"]


def test_batches_are_split_by_the_apis_max_batch(real_api, make_app):
    model = _get(real_api, "/api/v1/model")
    assert model["max_batch"] == REAL_API_MAX_BATCH
    contract = _get(real_api, "/api/v1/contract")
    rows = [dict(contract["example"], median_income=1.0 + 0.5 * i) for i in range(7)]
    before = _predict_requests(real_api).get("200", 0.0)
    at = make_app(real_api, APP_CHUNK_SIZE="500").run()
    at.file_uploader(key="batch_file").set_value(
        ("districts.csv", pd.DataFrame(rows).to_csv(index=False).encode(), "text/csv")
    )
    at.run()
    assert not at.tabs[1].warning  # the real API reports max_batch: no fallback notice
    at.button(key="batch_go").click().run()
    assert not at.exception
    after = _predict_requests(real_api).get("200", 0.0)
    assert after - before == 3  # 7 rows at max_batch 3: 3 + 3 + 1
    table = at.tabs[1].dataframe[-1].value
    direct = _direct_predictions(real_api, rows)
    assert table["predicted_price"].tolist() == pytest.approx(
        [p["predicted_price"] for p in direct]
    )
    assert table["interval_low"].tolist() == [p["interval"]["low"] for p in direct]
    assert table["interval_high"].tolist() == [p["interval"]["high"] for p in direct]


def test_real_validation_errors_reach_the_form_fields(real_api, make_app):
    """A real 422: what the API says about an instance shows under the inputs it names."""
    contract = _get(real_api, "/api/v1/contract")
    bad = dict(contract["example"], total_bedrooms=contract["example"]["total_rooms"] * 2)
    answer = httpx.post(f"{real_api}/api/v1/predict", json={"instances": [bad]}, timeout=30)
    assert answer.status_code == 422
    fields = answer.json()["error"]["fields"]
    at = make_app(real_api).run()
    at.number_input(key="input_total_bedrooms").set_value(bad["total_bedrooms"])
    at.form_submit_button[0].click().run()
    assert not at.exception
    assert not [m for m in at.metric if m.label == "Predicted median house value"]
    shown = " ".join(e.value for e in at.error)
    for item in fields:
        assert item["reason"] in shown


def test_model_panel_shows_the_real_model(real_api, make_app):
    model = _get(real_api, "/api/v1/model")
    at = make_app(real_api).run()
    assert not at.exception
    panel = at.tabs[2]
    assert panel.subheader[0].value == f"{model['name']} v{model['version']}"
    assert f"loaded from {model['source']}" in panel.caption[0].value
    shown = {m.label for m in panel.metric}
    assert shown == {name.upper() for name in model["metrics"]}
    lineage = dict(zip(*panel.dataframe[0].value.T.to_numpy(), strict=True))
    assert lineage["sha256"] == model["sha256"]
    assert lineage["max_batch"] == str(REAL_API_MAX_BATCH)


def test_an_upload_with_true_values_shows_realised_error(real_api, make_app, small_train):
    """The census columns as they come: the true value beside the inputs."""
    from housing.contract import RAW_FEATURES, TARGET

    rows = small_train[[*RAW_FEATURES, TARGET]].head(60)
    at = make_app(real_api).run()
    at.file_uploader(key="batch_file").set_value(
        ("census.csv", rows.to_csv(index=False).encode(), "text/csv")
    )
    at.run()
    at.button(key="batch_go").click().run()
    assert not at.exception
    tab = at.tabs[1]
    table = tab.dataframe[-2].value  # the priced rows, then the realised bands
    truth = pd.to_numeric(table[TARGET])  # uploads are read as text, then checked
    err = table["predicted_price"] - truth
    shown = {m.label: m.value for m in tab.metric}
    assert shown["Realised RMSE"] == f"${float((err**2).mean() ** 0.5):,.0f}"
    assert shown["Realised MAE"] == f"${float(err.abs().mean()):,.0f}"
    inside = (truth >= table["interval_low"]) & (truth <= table["interval_high"])
    assert shown["Interval coverage"] == f"{inside.mean():.1%}"
    bands = tab.dataframe[-1].value
    assert bands["n"].sum() == 60 and "test_coverage" in bands.columns


def test_an_upload_without_true_values_shows_no_realised_error(real_api, make_app):
    contract = _get(real_api, "/api/v1/contract")
    at = make_app(real_api).run()
    at.file_uploader(key="batch_file").set_value(
        ("d.csv", pd.DataFrame([contract["example"]]).to_csv(index=False).encode(), "text/csv")
    )
    at.run()
    at.button(key="batch_go").click().run()
    assert not at.exception
    assert "Realised RMSE" not in {m.label for m in at.tabs[1].metric}


def test_the_monitoring_tab_shows_the_apis_drift(real_api, make_app):
    from housing.contract import RAW_FEATURES

    contract = _get(real_api, "/api/v1/contract")
    _direct_prices(real_api, [contract["example"]] * 3)
    monitoring = _get(real_api, "/api/v1/monitoring")
    at = make_app(real_api).run()
    assert not at.exception
    tab = at.tabs[3]
    frame = tab.dataframe[0].value
    assert sorted(frame["feature"]) == sorted([*RAW_FEATURES, "predicted price"])
    assert any("nothing is judged yet" in w.value for w in tab.warning)  # few instances
    assert monitoring["drift"]["instances"] >= 3
    assert any("Refused" in m.value for m in tab.markdown)
