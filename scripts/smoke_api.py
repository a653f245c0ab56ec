"""Smoke test of a running prediction API: wait for /health, then predict the contract's example.

Standard library only, so it runs anywhere (CI runner, a clean virtual environment):

    python scripts/smoke_api.py --url http://127.0.0.1:8000            # health + prediction
    python scripts/smoke_api.py --url http://127.0.0.1:8000 --health-only
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
import urllib.error
import urllib.request
from typing import Any

logger = logging.getLogger(__name__)


class SmokeError(RuntimeError):
    """The API answered, but not as the contract says."""


def request_json(url: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
    """(status, parsed JSON body) of a GET, or of a POST when ``body`` is given."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"} if data else {}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        try:
            return exc.code, json.loads(payload or b"null")
        except json.JSONDecodeError:
            return exc.code, payload.decode(errors="replace")


def wait_healthy(base_url: str, deadline_s: float, poll_s: float = 1.0) -> None:
    """Poll GET /health until it answers 200 {"status": "ok"} or the deadline passes."""
    end = time.monotonic() + deadline_s
    last: str = "no answer"
    while time.monotonic() < end:
        try:
            status, body = request_json(f"{base_url}/health", timeout=3.0)
            if status == 200 and isinstance(body, dict) and body.get("status") == "ok":
                return
            last = f"HTTP {status}: {body}"
        except (OSError, json.JSONDecodeError) as exc:
            last = str(exc)
        time.sleep(poll_s)
    raise SmokeError(f"/health not ok after {deadline_s:.0f}s ({last})")


def predict_example(base_url: str, deadline_s: float, poll_s: float = 1.0) -> float:
    """Wait for /ready, post the contract's example row, return the predicted price."""
    end = time.monotonic() + deadline_s
    status, body = 0, None
    while time.monotonic() < end:
        status, body = request_json(f"{base_url}/ready")
        if status == 200:
            break
        time.sleep(poll_s)
    if status != 200:
        raise SmokeError(f"/ready not 200 after {deadline_s:.0f}s (HTTP {status}: {body})")
    status, contract = request_json(f"{base_url}/api/v1/contract")
    if status != 200 or not isinstance(contract, dict) or "example" not in contract:
        raise SmokeError(f"/api/v1/contract: HTTP {status}, no example")
    status, body = request_json(
        f"{base_url}/api/v1/predict", {"instances": [contract["example"]]}, timeout=30.0
    )
    if status != 200:
        raise SmokeError(f"/api/v1/predict: HTTP {status}: {body}")
    price = body["predictions"][0]["predicted_price"]
    if not isinstance(price, int | float) or not math.isfinite(price) or price <= 0:
        raise SmokeError(f"/api/v1/predict returned an implausible price {price!r}")
    return float(price)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="API base URL")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for it")
    parser.add_argument("--health-only", action="store_true", help="skip the prediction")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    base_url = args.url.rstrip("/")
    try:
        wait_healthy(base_url, args.timeout)
        logger.info("GET %s/health: ok", base_url)
        if not args.health_only:
            price = predict_example(base_url, args.timeout)
            logger.info("POST %s/api/v1/predict: predicted_price=%.1f", base_url, price)
    except SmokeError as exc:
        logger.error("%s", exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
