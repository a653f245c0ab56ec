"""The Streamlit page through AppTest, against a stub API served over real HTTP."""

from __future__ import annotations

import json

import pytest
from app_stub import CONTRACT, MODEL, error_body, stub_interval, stub_price


def _deck(at) -> dict:
    charts = at.get("deck_gl_json_chart")
    assert len(charts) == 1
    return json.loads(charts[0].proto.json)


def _price_metric(at) -> str:
    return next(m.value for m in at.metric if m.label == "Predicted median house value")


def _interval_metric(at):
    return next((m for m in at.metric if m.label.endswith("prediction interval")), None)


def _column_holding(at, key: str):
    """The form column that holds the input with this key."""
    for column in at.columns:
        if any(getattr(node, "key", None) == key for node in _walk(column)):
            return column
    raise AssertionError(f"no column holds {key}")


def _walk(node):
    for child in getattr(node, "children", {}).values():
        yield child
        yield from _walk(child)


def test_form_is_bounded_by_the_contract_and_prefilled_with_its_example(stub, make_app):
    at = make_app(stub.url).run()
    assert not at.exception
    features = CONTRACT["features"]
    for name, rule in features.items():
        if rule["dtype"] == "category":
            box = at.selectbox(key=f"input_{name}")
            assert box.options == rule["categories"]
            assert box.value == CONTRACT["example"][name]
        else:
            field = at.number_input(key=f"input_{name}")
            assert (field.min, field.max) == (rule["min"], rule["max"])
            assert field.value == pytest.approx(CONTRACT["example"][name])


def test_submitting_the_form_shows_price_model_and_map(stub, make_app):
    at = make_app(stub.url).run()
    at.form_submit_button[0].click().run()
    assert not at.exception
    sent = stub.calls("POST", "/api/v1/predict")
    assert len(sent) == 1
    assert sent[0].body == {"instances": [CONTRACT["example"]]}
    assert _price_metric(at) == f"${stub_price(CONTRACT['example']):,.0f}"
    interval = stub_interval(CONTRACT["example"])
    shown = _interval_metric(at)
    assert shown.label == "90% prediction interval"
    assert shown.value == f"${interval['low']:,.0f} to ${interval['high']:,.0f}"
    identity = next(m.value for m in at.markdown if m.value.startswith("Priced by"))
    assert "**housing_price_model** version `3` (alias `champion`" in identity
    layers = _deck(at)["layers"]
    assert [layer["id"] for layer in layers] == ["training-districts", "district"]
    assert len(layers[0]["data"]) == 3
    assert layers[1]["data"][0]["latitude"] == pytest.approx(CONTRACT["example"]["latitude"])


def test_changed_inputs_are_what_the_api_receives(stub, make_app):
    at = make_app(stub.url).run()
    at.number_input(key="input_median_income").set_value(2.5)
    at.checkbox(key="unknown_total_bedrooms").check()
    at.selectbox(key="input_ocean_proximity").set_value("INLAND")
    at.form_submit_button[0].click().run()
    assert not at.exception
    instance = stub.calls("POST", "/api/v1/predict")[0].body["instances"][0]
    assert instance["median_income"] == 2.5
    assert instance["total_bedrooms"] is None
    assert instance["ocean_proximity"] == "INLAND"
    assert _price_metric(at) == f"${stub_price(instance):,.0f}"


def test_map_degrades_to_the_district_alone_when_the_api_has_no_context(stub, make_app):
    stub.set("GET", "/api/v1/context", status=404, body=error_body(404, "not_found", "no"))
    at = make_app(stub.url).run()
    assert not at.exception
    assert [layer["id"] for layer in _deck(at)["layers"]] == ["district"]
    assert any("district only" in c.value for c in at.caption)


def test_a_422_puts_each_reason_next_to_its_input(stub, make_app):
    fields = [
        {"field": "instances[0].median_income", "reason": "must be <= 15.0"},
        {"field": "instances[0].households", "reason": "must not exceed total_rooms"},
        {"field": "instances", "reason": "something about the batch"},
    ]
    stub.set(
        "POST",
        "/api/v1/predict",
        status=422,
        body=error_body(422, "validation_error", "2 invalid fields", fields),
    )
    at = make_app(stub.url).run()
    at.form_submit_button[0].click().run()
    assert not at.exception
    assert not [m for m in at.metric if m.label == "Predicted median house value"]
    for key, reason in [
        ("input_median_income", "must be <= 15.0"),
        ("input_households", "must not exceed total_rooms"),
    ]:
        column = _column_holding(at, key)
        assert [e.value for e in column.error] == [reason]
    summary = [e.value for e in at.error if "rejected" in e.value]
    assert len(summary) == 1
    assert "2 invalid fields" in summary[0]
    assert "something about the batch" in summary[0]


def test_api_down_shows_a_message_and_a_retry_button_not_a_traceback(closed_port_url, make_app):
    at = make_app(closed_port_url).run()
    assert not at.exception
    assert len(at.error) == 1
    assert "Cannot reach the prediction API" in at.error[0].value
    assert at.button(key="retry").label == "Retry"
    assert not at.tabs


def test_not_ready_then_retry_recovers(stub, make_app):
    stub.set("GET", "/ready", status=503, body=error_body(503, "not_ready", "no model loaded yet"))
    at = make_app(stub.url).run()
    assert not at.exception
    assert "not ready: no model loaded yet" in at.error[0].value
    assert "stub-request-id" in at.error[0].value
    assert not at.number_input

    stub.set("GET", "/ready", body={"status": "ready", "model_version": "3"})
    at.button(key="retry").click().run()
    assert not at.exception
    assert not at.error
    assert at.number_input(key="input_median_income").value == pytest.approx(8.3252)


def test_contract_503_is_treated_like_not_ready(stub, make_app):
    stub.set("GET", "/api/v1/contract", status=503, body=error_body(503, "not_ready", "no model"))
    at = make_app(stub.url).run()
    assert not at.exception
    assert "not ready" in at.error[0].value
    assert at.button(key="retry")


def test_a_slow_api_is_cut_off_by_the_read_timeout(stub, make_app):
    stub.set("GET", "/ready", body={"status": "ready"}, delay=20)
    at = make_app(stub.url, APP_READ_TIMEOUT="0.5").run()
    assert not at.exception
    assert "did not answer within 0.5 s" in at.error[0].value
    assert at.button(key="retry")


def test_prediction_failing_after_load_offers_a_retry(stub, make_app):
    at = make_app(stub.url).run()
    stub.set("POST", "/api/v1/predict", status=500, body=error_body(500, "internal_error", "boom"))
    at.form_submit_button[0].click().run()
    assert not at.exception
    assert "The prediction API failed: boom" in at.error[0].value
    assert at.button(key="retry_single")


def test_bad_settings_are_one_line_not_a_traceback(stub, make_app):
    at = make_app(stub.url, APP_READ_TIMEOUT="soon").run()
    assert not at.exception
    assert at.error[0].value.startswith("Bad setting: APP_READ_TIMEOUT")


def test_model_panel_shows_version_alias_metrics_and_lineage(stub, make_app):
    model = dict(MODEL, last_reload_error="checksum mismatch for version 4")
    stub.set("GET", "/api/v1/model", body=model)
    at = make_app(stub.url).run()
    assert not at.exception
    panel = at.tabs[2]
    assert panel.subheader[0].value == "housing_price_model v3"
    assert "alias: champion" in panel.caption[0].value
    metrics = {m.label: m.value for m in panel.metric}
    assert metrics == {"MAE": "26,011", "R2": "0.8770", "RMSE": "39,978"}
    lineage = dict(zip(*panel.dataframe[0].value.T.to_numpy(), strict=True))
    for key in ("run_id", "git_commit", "data_md5", "sha256", "source", "loaded_at"):
        assert lineage[key] == str(MODEL[key])
    assert "checksum mismatch for version 4" in panel.warning[0].value


def test_one_pooled_connection_serves_every_rerun_of_a_session(stub, make_app):
    """The session's client keeps its connection alive: no new client (or TCP connection)
    per request or per rerun."""
    at = make_app(stub.url).run()
    at.form_submit_button[0].click().run()
    at.number_input(key="input_median_income").set_value(3.0)
    at.form_submit_button[0].click().run()
    assert not at.exception
    assert len(stub.calls("POST", "/api/v1/predict")) == 2
    assert len(stub.requests) >= 6  # ready x3, contract, model, context, predict x2
    assert len({r.client_port for r in stub.requests}) == 1


def test_model_panel_never_shows_credentials(stub, make_app):
    """Stub only: the real API redacts URIs itself; the app redacts again before showing."""
    secret = "hunter2-s3cret"
    model = dict(
        MODEL,
        source=f"registry (https://alice:{secret}@mlflow.example.com)",
        last_reload_error=f"cannot reach postgresql://bob:{secret}@db:5432/mlflow?password={secret}",
        load_errors=[f"registry: https://carol:{secret}@host/api token={secret}"],
    )
    stub.set("GET", "/api/v1/model", body=model)
    at = make_app(stub.url).run()
    assert not at.exception
    panel = at.tabs[2]
    texts = [str(node.value) for node in _walk(panel) if hasattr(node, "value")]
    texts += [panel.dataframe[0].value.to_csv()]
    shown = "\n".join(texts)
    assert "alice:***" not in shown and "https://***@mlflow.example.com" in shown
    assert "postgresql://***@db:5432" in shown
    assert secret not in shown


def test_an_answer_without_an_interval_still_shows_the_price(stub, make_app):
    """Stub only: an older API answers prices without intervals."""

    def prices_only(body):
        instances = body["instances"]
        return 200, {
            "predictions": [{"predicted_price": stub_price(i)} for i in instances],
            "model_name": "housing_price_model",
            "model_version": "2",
            "model_alias": "champion",
            "request_id": "r",
        }

    stub.set("POST", "/api/v1/predict", handler=prices_only)
    at = make_app(stub.url).run()
    at.form_submit_button[0].click().run()
    assert not at.exception
    assert _price_metric(at) == f"${stub_price(CONTRACT['example']):,.0f}"
    assert _interval_metric(at) is None
    assert any("no prediction interval" in c.value for c in at.caption)


def test_the_monitoring_tab_shows_drift_shadow_and_refusals(stub, make_app):
    at = make_app(stub.url).run()
    assert not at.exception and not at.error
    tab = at.tabs[3]
    frame = tab.dataframe[0].value
    assert frame["feature"].tolist()[-1] == "predicted price" and len(frame) == 5
    assert any("nothing is judged yet" in w.value for w in tab.warning)
    assert any("No shadow challenger" in i.value for i in tab.info)
    refused = tab.dataframe[1].value
    assert refused.to_dict("records") == [{"field": "median_income", "refused": 1, "share": 0.2}]


def test_an_api_without_monitoring_is_told_apart_from_an_outage(stub, make_app):
    stub.routes.pop(("GET", "/api/v1/monitoring"))
    at = make_app(stub.url).run()
    assert not at.exception and not at.error
    assert any("reports no monitoring" in i.value for i in at.tabs[3].info)
