"""The app's modules: settings, contract inputs, CSV validation, client, map, launcher."""

from __future__ import annotations

import math
import sys
import tomllib
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from app_stub import CONTRACT, error_body, stub_price

from app.__main__ import MAIN_SCRIPT, build_command
from app.batch import (
    BatchFileError,
    chunk_bounds,
    read_csv,
    results_csv,
    summarize,
    to_records,
    validate,
)
from app.client import (
    ApiClient,
    ApiRejectedError,
    ApiUnavailableError,
    FieldError,
    prediction_interval,
)
from app.geo import build_deck, value_colours
from app.inputs import ContractError, CrossRule, cross_rules, field_specs, normalize_category
from app.settings import AppSettings, SettingsError

APP_DIR = Path(__file__).resolve().parents[2] / "app"
SPECS = field_specs(CONTRACT)


# --- settings -------------------------------------------------------------------------------


def test_settings_defaults_and_overrides():
    assert AppSettings.from_env({}) == AppSettings()
    settings = AppSettings.from_env(
        {"API_URL": "http://api:8000/", "APP_READ_TIMEOUT": "2.5", "APP_CHUNK_SIZE": "50"}
    )
    assert (settings.api_url, settings.read_timeout, settings.chunk_size) == (
        "http://api:8000",
        2.5,
        50,
    )


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"API_URL": "api:8000"}, "API_URL"),
        ({"APP_READ_TIMEOUT": "soon"}, "APP_READ_TIMEOUT"),
        ({"APP_CONNECT_TIMEOUT": "-1"}, "APP_CONNECT_TIMEOUT"),
        ({"APP_READ_TIMEOUT": "inf"}, "APP_READ_TIMEOUT"),
        ({"APP_CHUNK_SIZE": "0"}, "APP_CHUNK_SIZE"),
        ({"APP_MAX_ROWS": "1.5"}, "APP_MAX_ROWS"),
    ],
)
def test_bad_settings_name_the_variable(env, fragment):
    with pytest.raises(SettingsError, match=fragment):
        AppSettings.from_env(env)


# --- inputs from the contract -----------------------------------------------------------------


def test_field_specs_follow_contract_order_bounds_and_example():
    assert [s.name for s in SPECS] == list(CONTRACT["features"])
    income = next(s for s in SPECS if s.name == "median_income")
    assert (income.minimum, income.maximum, income.default) == (0.4999, 15.0001, 8.3252)
    bedrooms = next(s for s in SPECS if s.name == "total_bedrooms")
    assert bedrooms.nullable
    ocean = next(s for s in SPECS if s.name == "ocean_proximity")
    assert ocean.kind == "category"
    assert ocean.default == "NEAR BAY"


def test_example_outside_bounds_is_clamped_and_missing_example_falls_back():
    contract = {
        "features": {
            "a": {"dtype": "float", "min": 0.0, "max": 1.0, "nullable": False},
            "b": {"dtype": "float", "min": 2.0, "max": None, "nullable": False},
            "c": {"dtype": "float", "min": 0.0, "max": 9.0, "nullable": True},
            "d": {"dtype": "category", "categories": ["X", "Y"], "nullable": False},
        },
        "example": {"a": 7.0, "d": " y "},
    }
    a, b, c, d = field_specs(contract)
    assert (a.default, b.default, b.maximum, c.default, d.default) == (1.0, 2.0, None, None, "Y")


def test_form_order_is_the_data_sets_whatever_order_the_api_serves():
    features = dict(sorted(CONTRACT["features"].items()))
    features = {"zeta": {"dtype": "float", "min": 0, "max": 1}, **features}
    names = [s.name for s in field_specs(dict(CONTRACT, features=features))]
    assert names == [*CONTRACT["features"], "zeta"]


@pytest.mark.parametrize("contract", [{}, {"features": {}}, {"features": {"x": "float"}}])
def test_unusable_contract_is_refused(contract):
    with pytest.raises(ContractError):
        field_specs(contract)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("NEAR BAY", "NEAR BAY"), ("  near   bay ", "NEAR BAY"), ("<1h ocean", "<1H OCEAN")],
)
def test_categories_ignore_case_and_whitespace(raw, expected):
    assert normalize_category(raw, ["<1H OCEAN", "NEAR BAY"]) == expected


@pytest.mark.parametrize("raw", ["NEARBAY", "", None, 3])
def test_unknown_categories_are_none(raw):
    assert normalize_category(raw, ["<1H OCEAN", "NEAR BAY"]) is None


# --- batch CSV --------------------------------------------------------------------------------


def _frame(rows: list[dict]) -> pd.DataFrame:
    return read_csv(pd.DataFrame(rows).to_csv(index=False).encode(), max_rows=100)


def test_valid_rows_become_typed_instances_without_problems():
    rows = [dict(CONTRACT["example"]), dict(CONTRACT["example"], total_bedrooms=None)]
    rows[1]["ocean_proximity"] = "inland"
    result = validate(_frame(rows), SPECS)
    assert result.problems.empty
    records = to_records(result.instances)
    assert records[0] == CONTRACT["example"]
    assert records[1]["total_bedrooms"] is None
    assert records[1]["ocean_proximity"] == "INLAND"
    assert all(type(v) in (float, str) for v in records[0].values())


def test_every_kind_of_bad_cell_is_reported_with_its_spreadsheet_row():
    bad = dict(CONTRACT["example"])
    bad.update(
        longitude="-130",
        latitude="inf",
        housing_median_age="",
        total_rooms="12 rooms",
        population="NA",
        ocean_proximity="MARS",
    )
    result = validate(_frame([dict(CONTRACT["example"]), bad]), SPECS)
    got = {(r.row, r.column): r.problem for r in result.problems.itertuples()}
    assert got == {
        (3, "longitude"): "must be >= -124.35",
        (3, "latitude"): "must be a finite number",
        (3, "housing_median_age"): "is required",
        (3, "total_rooms"): "is not a number",
        (3, "population"): "is required",
        (3, "ocean_proximity"): "must be one of: <1H OCEAN, INLAND, ISLAND, NEAR BAY, NEAR OCEAN",
    }
    assert result.invalid_rows == 1


def test_column_names_match_ignoring_case_and_spaces():
    data = ",".join(f" {n.upper()} " for n in CONTRACT["features"]) + "\n"
    data += ",".join(str(v) for v in CONTRACT["example"].values()) + "\n"
    result = validate(read_csv(data.encode(), max_rows=10), SPECS)
    assert result.problems.empty
    assert to_records(result.instances)[0] == CONTRACT["example"]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b"\xff\xfe\x00x", "not UTF-8"),
        (",".join(CONTRACT["features"]).encode() + b"\n", "no rows"),
        (b'a,b\n"1,2\n', "not valid CSV"),
    ],
)
def test_unusable_files_raise_one_line(data, fragment):
    with pytest.raises(BatchFileError, match=fragment):
        read_csv(data, max_rows=10)


def test_too_many_rows_are_refused_before_validation():
    rows = [dict(CONTRACT["example"])] * 11
    with pytest.raises(BatchFileError, match="limit is 10"):
        read_csv(pd.DataFrame(rows).to_csv(index=False).encode(), max_rows=10)


def test_missing_columns_are_named():
    frame = _frame([{k: v for k, v in CONTRACT["example"].items() if k != "population"}])
    with pytest.raises(BatchFileError, match="missing column\\(s\\): population"):
        validate(frame, SPECS)


@pytest.mark.parametrize(("total", "size"), [(0, 3), (1, 3), (7, 3), (9, 3), (1000, 500)])
def test_chunks_cover_every_row_once_within_the_size(total, size):
    bounds = chunk_bounds(total, size)
    covered = [i for start, stop in bounds for i in range(start, stop)]
    assert covered == list(range(total))
    assert all(0 < stop - start <= size for start, stop in bounds)


def test_summary_and_csv_round_trip():
    prices = pd.Series([100.0, 200.0, 300.0, 400.0])
    stats = summarize(prices)
    assert (stats["count"], stats["mean"], stats["median"], stats["min"], stats["max"]) == (
        4.0,
        250.0,
        250.0,
        100.0,
        400.0,
    )
    assert stats["std"] == pytest.approx(float(np.std([100, 200, 300, 400], ddof=1)))
    frame = pd.DataFrame({"id": ["a", "b"], "predicted_price": [1.5, 2.5]})
    back = pd.read_csv(pd.io.common.BytesIO(results_csv(frame)))
    pd.testing.assert_frame_equal(back, frame)


def test_priced_columns_carry_each_interval_and_tolerate_its_absence():
    from app.batch import interval_levels, priced_columns

    predictions = [
        {"predicted_price": 100.0, "interval": {"low": 80.0, "high": 125.0, "level": 0.9}},
        {"predicted_price": 200.0},  # an older API: no interval
        {"predicted_price": 300.0, "interval": {"low": 240.0, "high": 375.0, "level": 0.9}},
        {"predicted_price": 400.0, "interval": {"low": "x", "high": 1.0, "level": 0.9}},
        {"predicted_price": 500.0, "interval": {"low": 2.0, "high": 1.0, "level": 0.9}},
        {"predicted_price": 600.0, "interval": {"low": 1.0, "high": 2.0, "level": 1.0}},
    ]
    columns = priced_columns(predictions)
    assert list(columns.columns) == ["predicted_price", "interval_low", "interval_high"]
    assert columns["predicted_price"].tolist() == [100.0, 200.0, 300.0, 400.0, 500.0, 600.0]
    assert columns.loc[[0, 2], "interval_low"].tolist() == [80.0, 240.0]
    assert columns["interval_high"].isna().tolist() == [False, True, False, True, True, True]
    assert interval_levels(predictions) == {0.9}
    frame = pd.concat([pd.DataFrame({"id": list("abcdef")}), columns], axis=1)
    back = pd.read_csv(pd.io.common.BytesIO(results_csv(frame)))
    assert list(back.columns) == ["id", "predicted_price", "interval_low", "interval_high"]
    assert back["interval_high"].tolist()[:1] == [125.0]


def test_the_level_is_shown_without_spurious_rounding():
    from app.views.common import percent

    assert [percent(x) for x in (0.9, 0.95, 0.975, 0.5)] == ["90%", "95%", "97.5%", "50%"]


# --- client over real HTTP --------------------------------------------------------------------


def test_client_reads_every_endpoint(stub):
    client = ApiClient(stub.url)
    assert client.ready()["status"] == "ready"
    assert client.contract() == CONTRACT
    assert client.model()["alias"] == "champion"
    assert len(client.context()) == 3
    instance = dict(CONTRACT["example"], total_bedrooms=math.nan)
    body = client.predict([instance])
    assert body["predictions"][0]["predicted_price"] == stub_price(instance)
    interval = prediction_interval(body["predictions"][0])
    assert interval is not None and interval.level == 0.9
    assert interval.low <= stub_price(instance) <= interval.high
    assert stub.calls("POST", "/api/v1/predict")[0].body["instances"][0]["total_bedrooms"] is None


def test_client_turns_a_422_into_field_errors(stub):
    fields = [{"field": "instances[4].median_income", "reason": "must be <= 15.0"}]
    body = error_body(422, "validation_error", "x", fields)
    stub.set("POST", "/api/v1/predict", status=422, body=body)
    with pytest.raises(ApiRejectedError) as caught:
        ApiClient(stub.url).predict([CONTRACT["example"]])
    assert caught.value.status == 422
    assert caught.value.code == "validation_error"
    assert caught.value.request_id == "stub-request-id"
    assert caught.value.fields == [FieldError("instances[4].median_income", "must be <= 15.0")]
    assert (caught.value.fields[0].row, caught.value.fields[0].name) == (4, "median_income")


@pytest.mark.parametrize("status", [500, 502, 503])
def test_client_marks_server_errors_retryable(stub, status):
    stub.set("GET", "/ready", status=status, body=error_body(status, "x", "down for a bit"))
    with pytest.raises(ApiUnavailableError, match="down for a bit"):
        ApiClient(stub.url).ready()


def test_client_survives_a_non_json_error(stub):
    client = ApiClient(stub.url, transport=httpx.MockTransport(lambda r: httpx.Response(502)))
    with pytest.raises(ApiUnavailableError, match="HTTP 502"):
        client.model()


def test_client_refused_connection_and_timeout(stub, closed_port_url):
    with pytest.raises(ApiUnavailableError, match="Cannot reach"):
        ApiClient(closed_port_url, connect_timeout=1).ready()
    stub.set("GET", "/ready", body={"status": "ready"}, delay=20)
    with pytest.raises(ApiUnavailableError, match=r"within 0\.3 s"):
        ApiClient(stub.url, read_timeout=0.3).ready()


def test_client_rejects_a_prediction_list_of_the_wrong_length(stub):
    stub.set("POST", "/api/v1/predict", body={"predictions": []})
    with pytest.raises(ApiUnavailableError, match="malformed"):
        ApiClient(stub.url).predict([CONTRACT["example"]])


def test_context_is_optional(stub):
    stub.set("GET", "/api/v1/context", status=404, body=error_body(404, "not_found", "no"))
    assert ApiClient(stub.url).context() is None
    stub.set("GET", "/api/v1/context", body={"points": [{"latitude": 1}, "x"]})
    assert ApiClient(stub.url).context() == []


# --- map --------------------------------------------------------------------------------------


def test_colours_run_from_blue_to_red_with_value():
    low, mid, high = value_colours([0.0, 5.0, 10.0])
    assert low == [49, 54, 149]
    assert high == [165, 0, 38]
    assert low[2] > high[2] and high[0] > low[0]
    assert mid == [254, 224, 144]
    assert value_colours([3.0, 3.0]) == [[49, 54, 149]] * 2
    assert value_colours([]) == []


def test_deck_has_no_basemap():
    deck = build_deck(37.0, -120.0, None)
    assert deck.map_provider is None
    assert deck.map_style is None
    assert [layer.id for layer in deck.layers] == ["district"]


# --- launcher and Streamlit settings ----------------------------------------------------------


def test_launcher_builds_a_container_friendly_command():
    command = build_command({"PORT": "9000", "HOST": "0.0.0.0"})
    assert command[:5] == [sys.executable, "-m", "streamlit", "run", str(MAIN_SCRIPT)]
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in command[5:])
    assert flags["server.port"] == "9000"
    assert flags["server.address"] == "0.0.0.0"
    assert flags["server.headless"] == "true"
    assert flags["server.enableXsrfProtection"] == "true"
    assert flags["browser.gatherUsageStats"] == "false"
    assert build_command({})[6] == "--server.address=127.0.0.1"
    assert build_command({})[5] == "--server.port=8501"


@pytest.mark.parametrize("port", ["http", "0", "70000"])
def test_launcher_refuses_a_bad_port(port):
    with pytest.raises(SystemExit, match="PORT"):
        build_command({"PORT": port})


def test_streamlit_config_next_to_the_script_agrees_with_the_launcher():
    config = tomllib.loads((APP_DIR / ".streamlit" / "config.toml").read_text())
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in build_command({})[5:])
    for dotted, value in flags.items():
        section, key = dotted.split(".")
        if key in ("port", "address"):
            continue
        assert str(config[section][key]).lower() == value, dotted


# --- session.py ----------------------------------------------------------------------------


def _session_script() -> None:
    import streamlit as st

    from app.session import _session_client, api_client
    from app.settings import AppSettings

    first = api_client(AppSettings(api_url="http://127.0.0.1:1"))
    again = api_client(AppSettings(api_url="http://127.0.0.1:1"))
    other = api_client(AppSettings(api_url="http://127.0.0.1:2"))
    st.write(f"reused={first is again} first_closed={first.closed} other_closed={other.closed}")
    _session_client.clear()  # what Streamlit does when the session disconnects
    st.write(f"other_closed_on_release={other.closed}")


def test_one_client_per_session_closed_when_released():
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_session_script).run()
    assert not at.exception
    assert [m.value for m in at.markdown] == [
        "reused=True first_closed=True other_closed=False",
        "other_closed_on_release=True",
    ]


def test_client_close_is_idempotent_and_a_context_manager(stub):
    with ApiClient(stub.url) as client:
        client.ready()
        client.model()
    assert client.closed
    client.close()
    ports = {r.client_port for r in stub.requests}
    assert len(ports) == 1  # both requests on one kept-alive connection


def test_cross_field_rules_from_the_contract_are_checked_before_sending():
    contract = dict(
        CONTRACT,
        rules=[
            {"check": "total_bedrooms <= total_rooms", "fields": [], "why": "bedrooms are rooms"},
            {"check": "something weird", "fields": []},  # not understood: left to the API
        ],
    )
    rules = cross_rules(contract)
    assert rules == [CrossRule("total_bedrooms", "total_rooms", "bedrooms are rooms")]
    rows = [dict(CONTRACT["example"]), dict(CONTRACT["example"], total_bedrooms=900.0)]
    rows.append(dict(CONTRACT["example"], total_bedrooms=""))  # unknown: no rule applies
    frame = pd.DataFrame(rows).astype(str)
    result = validate(frame, field_specs(contract), rules)
    assert result.problems[["row", "column", "problem"]].to_dict("records") == [
        {
            "row": 3,
            "column": "total_bedrooms",
            "problem": "must be <= total_rooms (bedrooms are rooms)",
        }
    ]


def test_the_app_imports_only_the_housing_modules_its_image_carries():
    """app/Dockerfile copies these files of `housing` and no other: nothing else may load."""
    import re
    import subprocess
    import sys

    from app_servers import REPO_ROOT

    code = (
        "import sys, app.main, app.views.batch, app.views.monitoring, app.views.realised; "
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] == 'housing')))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    loaded = done.stdout.strip().splitlines()[-1].split(",")
    assert loaded == ["housing", "housing.metrics", "housing.monitor", "housing.monitor.realised"]
    dockerfile = (REPO_ROOT / "app" / "Dockerfile").read_text()
    copied = re.findall(r"src/(housing/[\w/]+)\.py", dockerfile)
    assert sorted(copied) == [
        "housing/__init__",
        "housing/metrics",
        "housing/monitor/__init__",
        "housing/monitor/realised",
    ]
