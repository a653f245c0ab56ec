"""A real HTTP server on 127.0.0.1 that answers like the prediction API, with per-test routes."""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CONTRACT: dict[str, Any] = {
    "version": 1,
    "target": "median_house_value",
    "features": {
        "longitude": {"dtype": "float", "min": -124.35, "max": -114.31, "nullable": False},
        "latitude": {"dtype": "float", "min": 32.54, "max": 41.95, "nullable": False},
        "housing_median_age": {"dtype": "float", "min": 1.0, "max": 52.0, "nullable": False},
        "total_rooms": {"dtype": "float", "min": 2.0, "max": 39320.0, "nullable": False},
        "total_bedrooms": {"dtype": "float", "min": 1.0, "max": 6445.0, "nullable": True},
        "population": {"dtype": "float", "min": 3.0, "max": 35682.0, "nullable": False},
        "households": {"dtype": "float", "min": 1.0, "max": 6082.0, "nullable": False},
        "median_income": {"dtype": "float", "min": 0.4999, "max": 15.0001, "nullable": False},
        "ocean_proximity": {
            "dtype": "category",
            "categories": ["<1H OCEAN", "INLAND", "ISLAND", "NEAR BAY", "NEAR OCEAN"],
            "nullable": False,
        },
    },
    "example": {
        "longitude": -122.23,
        "latitude": 37.88,
        "housing_median_age": 41.0,
        "total_rooms": 880.0,
        "total_bedrooms": 129.0,
        "population": 322.0,
        "households": 126.0,
        "median_income": 8.3252,
        "ocean_proximity": "NEAR BAY",
    },
    "target_range": {"min": 14999.0, "max": 500001.0},
}

MODEL: dict[str, Any] = {
    "name": "housing_price_model",
    "version": "3",
    "alias": "champion",
    "run_id": "0a1b2c3d4e5f",
    "metrics": {"rmse": 39978.4, "mae": 26011.2, "r2": 0.877},
    "git_commit": "2bef9ea0123456789",
    "data_md5": "d41d8cd98f00b204e9800998ecf8427e",
    "source": "local",
    "loaded_at": "2026-11-27T13:00:00Z",
    "last_reload_error": None,
    "sha256": "ab" * 32,
    "max_batch": 1000,
}

CONTEXT: dict[str, Any] = {
    "points": [
        {"latitude": 37.88, "longitude": -122.23, "value": 452600.0},
        {"latitude": 34.05, "longitude": -118.24, "value": 350000.0},
        {"latitude": 36.74, "longitude": -119.78, "value": 90000.0},
    ]
}


# GET /api/v1/monitoring of an API that has priced a few requests (shape: serve/schemas.py).
MONITORING: dict[str, Any] = {
    "drift": {
        "available": True,
        "instances": 12,
        "window": 2000,
        "threshold": 0.1,
        "min_instances": 500,
        "enough": False,
        "features": {
            name: {"psi": 0.5, "drifted": False}
            for name in ("longitude", "latitude", "median_income", "ocean_proximity")
        },
        "prediction": {"psi": 0.4, "drifted": False},
    },
    "shadow": None,
    "predict_requests": 5,
    "refused_by_field": {"median_income": 1},
}


def stub_price(instance: dict[str, Any]) -> float:
    """The stub model: a price that depends on the inputs, so tests can check what was sent."""
    return round(
        40_000.0 * float(instance["median_income"]) + 1_000.0 * float(instance["latitude"]), 2
    )


def stub_interval(instance: dict[str, Any]) -> dict[str, float]:
    """The stub's 90 % interval, shaped like the real API's (a constant band in log space)."""
    price = stub_price(instance)
    return {"low": round(price * 0.8, 2), "high": round(price * 1.25, 2), "level": 0.9}


def error_body(status: int, code: str, message: str, fields: list[dict] | None = None) -> dict:
    """An error in the contract's shape."""
    return {
        "error": {"status": status, "code": code, "message": message, "fields": fields or []},
        "request_id": "stub-request-id",
    }


Handler = Callable[[Any], tuple[int, Any]]


@dataclass
class Route:
    """A canned answer, or a handler of the decoded JSON body; ``delay`` seconds before it."""

    status: int = 200
    body: Any = None
    handler: Handler | None = None
    delay: float = 0.0


@dataclass
class Recorded:
    method: str
    path: str
    body: Any
    client_port: int = 0  # the client's TCP port: one value per kept-alive connection


def _predict(body: Any) -> tuple[int, Any]:
    instances = body.get("instances") if isinstance(body, dict) else None
    if not isinstance(instances, list) or not instances:
        return 422, error_body(422, "validation_error", "no instances", [])
    return 200, {
        "predictions": [
            {"predicted_price": stub_price(i), "interval": stub_interval(i)} for i in instances
        ],
        "model_name": "housing_price_model",
        "model_version": "3",
        "model_alias": "champion",
        "request_id": "stub-request-id",
    }


@dataclass
class StubApi:
    """Routes keyed by (method, path); every request is recorded for assertions."""

    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""
    _server: ThreadingHTTPServer | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.set("GET", "/health", body={"status": "ok"})
        self.set("GET", "/ready", body={"status": "ready", "model_version": "3"})
        self.set("GET", "/api/v1/contract", body=copy.deepcopy(CONTRACT))
        self.set("GET", "/api/v1/model", body=copy.deepcopy(MODEL))
        self.set("GET", "/api/v1/context", body=copy.deepcopy(CONTEXT))
        self.set("GET", "/api/v1/monitoring", body=copy.deepcopy(MONITORING))
        self.set("POST", "/api/v1/predict", handler=_predict)

    def set(
        self,
        method: str,
        path: str,
        *,
        status: int = 200,
        body: Any = None,
        handler: Handler | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer ``method path`` with this status and body (or handler) from now on."""
        self.routes[(method, path)] = Route(status, body, handler, delay)

    def calls(self, method: str, path: str) -> list[Recorded]:
        """The requests received for one route, in order."""
        return [r for r in self.requests if (r.method, r.path) == (method, path)]

    def start(self) -> StubApi:
        stub = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn does

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                path = self.path.split("?", 1)[0]
                stub.requests.append(Recorded(self.command, path, body, self.client_address[1]))
                route = stub.routes.get((self.command, path))
                if route is None:
                    status, answer = 404, error_body(404, "not_found", f"no route {path}")
                else:
                    if route.delay and stub._stop.wait(route.delay):
                        return
                    status, answer = (
                        route.handler(body) if route.handler else (route.status, route.body)
                    )
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Request-ID", "stub-request-id")
                self.end_headers()
                self.wfile.write(data)

            do_GET = _serve  # noqa: N815 (the name http.server dispatches to)
            do_POST = _serve  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # silence stderr
                return

        class _Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                return  # a client that timed out and hung up is expected here

        self._server = _Server(("127.0.0.1", 0), _Handler)
        host, port = self._server.server_address[:2]
        self.url = f"http://{host}:{port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
