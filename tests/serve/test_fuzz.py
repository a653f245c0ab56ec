"""Schema-driven fuzzing of the OpenAPI spec (schemathesis): no input may cause a 5xx."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from serve_support import make_settings, settings_for

from serve.main import create_app

CONFIG = schemathesis.Config.from_dict(
    {"generation": {"mode": "all", "max-examples": 60, "deterministic": True}}
)
# The spec does not depend on the model, so it is read from an app that is never started.
schema = schemathesis.openapi.from_dict(create_app(make_settings()).openapi(), config=CONFIG)


STATUSES: dict[str, set[int]] = {}


@pytest.fixture(scope="module")
def fuzz_client(champion_dir):
    app = create_app(settings_for(champion_dir, admin_token="fuzz-token"))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case, fuzz_client):
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    headers = dict(kwargs.get("headers") or {})
    if "json" in kwargs:
        headers.setdefault("Content-Type", "application/json")
    response = fuzz_client.request(
        kwargs["method"],
        kwargs["url"],
        headers=headers,
        params=kwargs.get("params"),
        cookies=kwargs.get("cookies"),
        content=_body(kwargs),
    )
    STATUSES.setdefault(f"{case.method} {case.path}", set()).add(response.status_code)
    assert response.status_code < 500, (case.method, case.path, case.body, response.text)
    if response.status_code >= 400:
        body = response.json()
        assert body["error"]["status"] == response.status_code
        assert body["request_id"] == response.headers["x-request-id"]


def _body(kwargs: dict) -> bytes | None:
    import json

    if "json" in kwargs:
        return json.dumps(kwargs["json"]).encode()
    data = kwargs.get("data")
    return data.encode() if isinstance(data, str) else data


def test_fuzzing_reached_the_validators():
    """Guard against a fuzz run that only ever hit the content-type check."""
    assert 422 in STATUSES.get("POST /api/v1/predict", set()), STATUSES
