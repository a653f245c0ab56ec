"""The batch tab through AppTest: validation before sending, chunks, results, failures."""

from __future__ import annotations

import pandas as pd
import pytest
from app_stub import CONTRACT, MODEL, error_body, stub_interval, stub_price

NAMES = list(CONTRACT["features"])


def _csv(rows: list[dict], columns: list[str] | None = None) -> bytes:
    return pd.DataFrame(rows, columns=columns).to_csv(index=False).encode()


def _rows(count: int) -> list[dict]:
    """Valid districts that differ in income, so each price is distinct."""
    base = CONTRACT["example"]
    return [dict(base, median_income=1.0 + 0.5 * i) for i in range(count)]


def _upload(at, data: bytes, name: str = "districts.csv"):
    at.file_uploader(key="batch_file").set_value((name, data, "text/csv"))
    return at.run()


def _batch(at):
    return at.tabs[1]


def test_valid_upload_is_priced_in_chunks_with_summary_histogram_and_download(stub, make_app):
    rows = _rows(10)
    for row in rows:
        row["district_id"] = f"d{row['median_income']}"  # an extra column survives
    at = _upload(make_app(stub.url, APP_CHUNK_SIZE="4").run(), _csv(rows))
    assert not at.exception
    tab = _batch(at)
    assert "All 10 rows" in tab.success[0].value
    assert not stub.calls("POST", "/api/v1/predict")  # validation alone sends nothing

    at.button(key="batch_go").click().run()
    assert not at.exception
    sizes = [len(c.body["instances"]) for c in stub.calls("POST", "/api/v1/predict")]
    assert sizes == [4, 4, 2]
    sent = [i for c in stub.calls("POST", "/api/v1/predict") for i in c.body["instances"]]
    assert [i["median_income"] for i in sent] == [r["median_income"] for r in rows]
    assert "district_id" not in sent[0]

    tab = _batch(at)
    table = next(d.value for d in tab.dataframe if "predicted_price" in d.value.columns)
    expected = [stub_price(r) for r in rows]
    assert table["predicted_price"].tolist() == pytest.approx(expected)
    assert table["interval_low"].tolist() == [stub_interval(r)["low"] for r in rows]
    assert table["interval_high"].tolist() == [stub_interval(r)["high"] for r in rows]
    assert list(table.columns[-3:]) == ["predicted_price", "interval_low", "interval_high"]
    assert table["district_id"].tolist() == [r["district_id"] for r in rows]
    assert any("90% prediction interval" in c.value for c in tab.caption)
    metrics = {m.label: m.value for m in tab.metric}
    assert metrics["Rows"] == "10"
    assert metrics["Max"] == f"${max(expected):,.0f}"
    assert metrics["Min"] == f"${min(expected):,.0f}"
    assert len(at.tabs[1].get("vega_lite_chart")) == 1  # the price histogram
    download = at.download_button(key="batch_download")
    assert download.label == "Download results (CSV)"
    assert download.proto.url.endswith(".csv")


def test_problems_are_listed_per_row_and_nothing_is_sent(stub, make_app):
    rows = _rows(4)
    rows[1]["median_income"] = "lots"
    rows[1]["ocean_proximity"] = "MOON"
    rows[2]["latitude"] = 50.0
    rows[3]["ocean_proximity"] = "  near   bay "  # fine: case and spaces are ignored
    rows[3]["total_bedrooms"] = ""  # fine: nullable
    at = _upload(make_app(stub.url).run(), _csv(rows))
    assert not at.exception
    tab = _batch(at)
    assert "3 problem(s) in 2 of 4 rows" in tab.error[0].value
    problems = tab.dataframe[0].value
    assert problems[["row", "column"]].values.tolist() == [
        [3, "median_income"],
        [3, "ocean_proximity"],
        [4, "latitude"],
    ]
    assert problems.loc[2, "problem"] == "must be <= 41.95"
    assert not [b for b in at.button if b.key == "batch_go"]
    assert not stub.calls("POST", "/api/v1/predict")

    assert "Nothing has been sent" in tab.error[0].value
    at.checkbox(key="batch_skip").check().run()
    assert "Those rows are skipped" in _batch(at).error[0].value
    at.button(key="batch_go").click().run()
    assert not at.exception
    sent = [i for c in stub.calls("POST", "/api/v1/predict") for i in c.body["instances"]]
    assert [i["median_income"] for i in sent] == [rows[0]["median_income"], 2.5]
    assert sent[1]["ocean_proximity"] == "NEAR BAY"
    assert sent[1]["total_bedrooms"] is None
    table = next(d.value for d in _batch(at).dataframe if "predicted_price" in d.value.columns)
    assert len(table) == 2


def test_missing_columns_are_named_and_nothing_is_sent(stub, make_app):
    data = _csv(_rows(2), columns=[n for n in NAMES if n != "households"])
    at = _upload(make_app(stub.url).run(), data)
    assert not at.exception
    assert "missing column(s): households" in _batch(at).error[0].value
    assert not stub.calls("POST", "/api/v1/predict")


def test_not_a_csv_is_one_clear_line(stub, make_app):
    at = _upload(make_app(stub.url).run(), b"\xff\xfe\x00garbage", name="photo.csv")
    assert not at.exception
    assert "not UTF-8" in _batch(at).error[0].value


def test_api_rejection_is_mapped_back_to_spreadsheet_rows(stub, make_app):
    fields = [{"field": "instances[1].households", "reason": "must not exceed total_rooms"}]
    at = _upload(make_app(stub.url, APP_CHUNK_SIZE="2").run(), _csv(_rows(4)))
    stub.set(
        "POST",
        "/api/v1/predict",
        status=422,
        body=error_body(422, "validation_error", "1 invalid field", fields),
    )
    at.button(key="batch_go").click().run()
    assert not at.exception
    tab = _batch(at)
    assert "rejected the batch: 1 invalid field" in tab.error[0].value
    reasons = tab.dataframe[0].value
    assert reasons.values.tolist() == [[3, "households", "must not exceed total_rooms"]]
    assert not [d for d in tab.dataframe if "predicted_price" in d.value.columns]


def test_api_going_down_mid_batch_stops_with_a_retry(stub, make_app):
    at = _upload(make_app(stub.url, APP_CHUNK_SIZE="2").run(), _csv(_rows(4)))
    calls = {"n": 0}

    def flaky(body):
        calls["n"] += 1
        if calls["n"] == 1:
            return 200, {
                "predictions": [{"predicted_price": 1.0}] * len(body["instances"]),
                "model_name": "m",
                "model_version": "3",
            }
        return 503, error_body(503, "not_ready", "reloading")

    stub.set("POST", "/api/v1/predict", handler=flaky)
    at.button(key="batch_go").click().run()
    assert not at.exception
    tab = _batch(at)
    assert "Stopped after 2 of 4 rows" in tab.warning[0].value
    assert "not ready: reloading" in tab.error[0].value
    assert at.button(key="retry_batch")


def test_an_api_without_max_batch_gets_a_clear_notice_and_app_chunks(stub, make_app):
    """Stub only: the real API always reports max_batch; an older one may not."""
    model = {k: v for k, v in MODEL.items() if k != "max_batch"}
    stub.set("GET", "/api/v1/model", body=model)
    at = _upload(make_app(stub.url, APP_CHUNK_SIZE="4").run(), _csv(_rows(5)))
    notice = _batch(at).warning[0].value
    assert "does not report `max_batch`" in notice
    assert "4 rows per request (APP_CHUNK_SIZE)" in notice
    at.button(key="batch_go").click().run()
    assert not at.exception
    sizes = [len(c.body["instances"]) for c in stub.calls("POST", "/api/v1/predict")]
    assert sizes == [4, 1]


def test_an_answer_without_intervals_leaves_the_interval_columns_empty(stub, make_app):
    """Stub only: an older API answers prices without intervals; the prices are kept."""

    def prices_only(body):
        return 200, {"predictions": [{"predicted_price": 5.0}] * len(body["instances"])}

    stub.set("POST", "/api/v1/predict", handler=prices_only)
    at = _upload(make_app(stub.url).run(), _csv(_rows(3)))
    at.button(key="batch_go").click().run()
    assert not at.exception
    tab = _batch(at)
    table = next(d.value for d in tab.dataframe if "predicted_price" in d.value.columns)
    assert table["predicted_price"].tolist() == [5.0] * 3
    assert table["interval_low"].isna().all() and table["interval_high"].isna().all()
    assert any("answered no prediction intervals" in c.value for c in tab.caption)
