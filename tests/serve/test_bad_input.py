"""Every kind of bad input answers a 4xx naming the field and the reason, never a 5xx."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

PREDICT = "/api/v1/predict"


def _error(response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error", "request_id"}
    assert body["request_id"] == response.headers["x-request-id"]
    return body["error"]


def _only_field(response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    error = _error(response)
    assert error["status"] == status and error["code"] == code
    assert error["fields"], "an error must name the field"
    return error["fields"][0]


def _raw(client, payload: bytes, content_type: str | None = "application/json"):
    headers = {"Content-Type": content_type} if content_type else {}
    return client.post(PREDICT, content=payload, headers=headers)


def test_malformed_json_is_400(client):
    field = _only_field(_raw(client, b'{"instances": [{'), 400, "malformed_json")
    assert field["field"] == "body" and "invalid JSON" in field["reason"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_nan_and_infinity_are_422_naming_the_field(client, example, literal):
    text = json.dumps({"instances": [example]}).replace(
        f'"median_income": {json.dumps(example["median_income"])}', f'"median_income": {literal}'
    )
    assert literal in text
    field = _only_field(_raw(client, text.encode()), 422, "validation_error")
    assert field == {
        "field": "instances[0].median_income",
        "reason": "must be a finite number (NaN and Infinity are not allowed)",
    }


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("8.3", "must be a number"),
        (True, "must be a number"),
        ([1], "must be a number"),
        (None, "must not be null"),
    ],
)
def test_wrong_types_are_422(client, example, value, reason):
    response = client.post(PREDICT, json={"instances": [{**example, "median_income": value}]})
    field = _only_field(response, 422, "validation_error")
    assert field["field"] == "instances[0].median_income"
    assert field["reason"].startswith(reason)


def test_category_must_be_a_string(client, example):
    response = client.post(PREDICT, json={"instances": [{**example, "ocean_proximity": 3}]})
    field = _only_field(response, 422, "validation_error")
    assert field == {"field": "instances[0].ocean_proximity", "reason": "must be a string"}


def test_missing_field_is_422(client, example):
    row = {k: v for k, v in example.items() if k != "latitude"}
    response = client.post(PREDICT, json={"instances": [example, row]})
    assert _only_field(response, 422, "validation_error") == {
        "field": "instances[1].latitude",
        "reason": "field required",
    }


def test_unknown_field_is_422(client, example):
    response = client.post(PREDICT, json={"instances": [{**example, "median_incme": 3.0}]})
    field = _only_field(response, 422, "validation_error")
    assert field["field"] == "instances[0].median_incme" and "unknown field" in field["reason"]


def test_unknown_category_is_422_listing_the_allowed(client, example):
    response = client.post(PREDICT, json={"instances": [{**example, "ocean_proximity": "MARS"}]})
    field = _only_field(response, 422, "validation_error")
    assert field["field"] == "instances[0].ocean_proximity"
    assert "unknown category 'MARS'" in field["reason"] and "NEAR BAY" in field["reason"]


def test_out_of_range_uses_the_models_contract(client, example):
    contract = client.get("/api/v1/contract").json()["features"]
    too_high = contract["median_income"]["max"] * 1.01
    too_low = contract["latitude"]["min"] - 1
    rows = [example, {**example, "median_income": too_high, "latitude": too_low}]
    response = client.post(PREDICT, json={"instances": rows})
    assert response.status_code == 422
    fields = {f["field"]: f["reason"] for f in _error(response)["fields"]}
    assert set(fields) == {"instances[1].median_income", "instances[1].latitude"}
    assert f"{contract['median_income']['max']:g}" in fields["instances[1].median_income"]
    assert f"{contract['latitude']['min']:g}" in fields["instances[1].latitude"]


def test_bounds_are_inclusive(client, example):
    contract = client.get("/api/v1/contract").json()["features"]
    row = {**example, "median_income": contract["median_income"]["max"]}
    assert client.post(PREDICT, json={"instances": [row]}).status_code == 200


def test_negative_count_is_422(client, example):
    response = client.post(PREDICT, json={"instances": [{**example, "population": -5}]})
    assert _only_field(response, 422, "validation_error")["field"] == "instances[0].population"


def test_empty_batch_is_422(client):
    field = _only_field(client.post(PREDICT, json={"instances": []}), 422, "validation_error")
    assert field == {"field": "instances", "reason": "must contain at least 1 instance"}


def test_batch_over_max_is_422(client, example):
    response = client.post(PREDICT, json={"instances": [example] * 1001})
    field = _only_field(response, 422, "validation_error")
    assert field["field"] == "instances" and "at most 1000" in field["reason"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (b"[]", "body"),
        (b'"x"', "body"),
        (b"{}", "instances"),
        (b'{"instances": {}}', "instances"),
        (b'{"instances": [1]}', "instances[0]"),
    ],
)
def test_wrong_shapes_are_422(client, payload, field):
    assert _only_field(_raw(client, payload), 422, "validation_error")["field"] == field


def test_empty_body_is_422(client):
    assert _only_field(_raw(client, b""), 422, "validation_error")["field"] == "body"


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None],
)
def test_wrong_content_type_is_415(client, example, content_type):
    payload = json.dumps({"instances": [example]}).encode()
    field = _only_field(_raw(client, payload, content_type), 415, "unsupported_media_type")
    assert field["field"] == "Content-Type"


def test_json_with_charset_is_accepted(client, example):
    payload = json.dumps({"instances": [example]}).encode()
    assert _raw(client, payload, "application/json; charset=utf-8").status_code == 200


def test_body_over_limit_is_413_from_content_length(client):
    payload = b'{"instances": [' + b" " * 1_100_000 + b"]}"
    field = _only_field(_raw(client, payload), 413, "payload_too_large")
    assert field["field"] == "body" and "1048576" in field["reason"]


def test_chunked_body_over_limit_is_413(client):
    def chunks():
        yield b'{"instances": ['
        for _ in range(200):
            yield b" " * 10_000

    response = client.post(PREDICT, content=chunks(), headers={"Content-Type": "application/json"})
    _only_field(response, 413, "payload_too_large")


def test_chunked_body_under_limit_is_served(client, example):
    payload = json.dumps({"instances": [example] * 3}).encode()

    def chunks():
        for i in range(0, len(payload), 100):
            yield payload[i : i + 100]

    response = client.post(PREDICT, content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 200 and len(response.json()["predictions"]) == 3


def test_unknown_route_and_method_keep_the_error_shape(client):
    assert _error(client.get("/api/v1/nope"))["code"] == "not_found"
    assert _error(client.get(PREDICT))["code"] == "method_not_allowed"


# --- bounded cost: the count before the elements, a capped error list -------------------


def test_too_many_instances_are_refused_before_any_element_is_validated(client):
    # 100,000 empty objects (~300 KB): one parse and a count, not 800,000 field errors.
    payload = b'{"instances": [' + b",".join([b"{}"] * 100_000) + b"]}"
    response = _raw(client, payload)
    field = _only_field(response, 422, "validation_error")
    error = _error(response)
    assert error["fields"] == [field]  # the count only: no element was looked at
    assert field["field"] == "instances" and "got 100000" in field["reason"]
    assert "100000" in error["message"] and "MAX_BATCH=1000" in error["message"]


@pytest.mark.parametrize("count", [300, 1000])  # one-pass path (small body) and chunked path
def test_the_error_list_is_capped_with_the_total_in_the_message(client, count):
    payload = b'{"instances": [' + b",".join([b"{}"] * count) + b"]}"
    error = _error(_raw(client, payload))
    assert error["code"] == "validation_error" and len(error["fields"]) == 50
    assert error["fields"][0] == {"field": "instances[0].longitude", "reason": "field required"}
    assert "(the first 50 are listed)" in error["message"]
    if count == 300:  # validated in one pydantic pass: the exact total (8 required fields)
        assert error["message"].startswith(f"{8 * count} invalid field(s)")
    else:  # validated in chunks, stopping at the cap
        assert "validation stopped after 100 of 1000 instances" in error["message"]


def test_large_bodies_name_the_same_fields_as_small_ones(client, example):
    """The chunked path reports an element's error at its index in the whole batch."""
    instances = [dict(example) for _ in range(150)]
    instances[123]["median_income"] = "high"
    del instances[140]["latitude"]
    error = _error(_raw(client, json.dumps({"instances": instances}).encode()))
    assert [f["field"] for f in error["fields"]] == [
        "instances[123].median_income",
        "instances[140].latitude",
    ]
    assert error["message"].startswith("2 invalid field(s)")


def test_large_bodies_keep_the_envelope_errors_and_nan_422(client, example):
    big = [example] * 20  # over 2 x MAX_BATCH bytes: the orjson + chunked path
    assert len(json.dumps(big)) > 2000
    field = _only_field(
        _raw(client, json.dumps({"instances": big, "extra": 1}).encode()),
        422,
        "validation_error",
    )
    assert field["field"] == "extra"
    # orjson refuses NaN; the body must still get its 422 naming the field, not a 400.
    text = re.sub(
        r'"latitude": [-0-9.e]+', '"latitude": NaN', json.dumps({"instances": big}), count=1
    )
    field = _only_field(_raw(client, text.encode()), 422, "validation_error")
    assert field["field"] == "instances[0].latitude" and "finite" in field["reason"]


# --- physical bounds, cross-field rules and the region (the contract owns them all) ---------


@pytest.mark.parametrize(
    "changes",
    [
        {"households": 1e-300},
        {"households": 0},
        {"population": 0.5},
        {"total_rooms": 0, "total_bedrooms": None},
        {"median_income": 0},
    ],
)
def test_impossible_counts_and_income_are_422(client, example, changes):
    """`households = 1e-300` once got a price: counts are at least 1, income above 0."""
    row = {**example, **changes}
    response = client.post(PREDICT, json={"instances": [example, row]})
    field = _only_field(response, 422, "validation_error")
    name = next(k for k, v in changes.items() if v is not None)
    assert field["field"] == f"instances[1].{name}"
    assert field["reason"].startswith("must be ")


def test_more_bedrooms_than_rooms_is_422_naming_both_fields(client, example):
    rows = [example] * 3 + [{**example, "total_rooms": 500, "total_bedrooms": 600}]
    response = client.post(PREDICT, json={"instances": rows})
    assert response.status_code == 422
    fields = _error(response)["fields"]
    assert [f["field"] for f in fields] == [
        "instances[3].total_bedrooms",
        "instances[3].total_rooms",
    ]
    reason = fields[0]["reason"]
    assert fields[1]["reason"] == reason
    assert "total_bedrooms (600)" in reason and "total_rooms (500)" in reason


def test_missing_bedrooms_with_few_rooms_is_served(client, example):
    row = {**example, "total_rooms": 1, "total_bedrooms": None}
    assert client.post(PREDICT, json={"instances": [row]}).status_code == 200


@pytest.mark.parametrize(
    ("lat", "lon"),
    [
        (39.53, -119.81),  # Reno NV
        (36.17, -115.14),  # Las Vegas NV
        (39.16, -119.77),  # Carson City NV
        (32.62, -115.45),  # Mexicali MX
        (32.50, -117.03),  # Tijuana MX
        (36.0, -124.0),  # the Pacific
        (34.0, -121.0),  # the Pacific
    ],
)
def test_districts_outside_california_are_422_naming_both_coordinates(client, example, lat, lon):
    row = {**example, "latitude": lat, "longitude": lon}
    response = client.post(PREDICT, json={"instances": [row]})
    assert response.status_code == 422
    fields = _error(response)["fields"]
    assert [f["field"] for f in fields] == ["instances[0].latitude", "instances[0].longitude"]
    assert "outside California" in fields[0]["reason"]


def test_many_bad_instances_are_capped_and_counted(client, example):
    rows = [{**example, "households": 0, "population": 0}] * 300
    rows += [{**example, "total_rooms": 5, "total_bedrooms": 6}] * 100  # two fields each
    response = client.post(PREDICT, json={"instances": rows})
    error = _error(response)
    assert response.status_code == 422 and len(error["fields"]) == 50
    assert error["message"].startswith("800 invalid field(s): instances[0].population, ")
    assert error["message"].endswith(" (the first 50 are listed)")
