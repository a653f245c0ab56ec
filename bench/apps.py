"""The comparison apps, run by uvicorn with --factory on the same configuration as ours.

(a) ``make_floor_app``: FastAPI with our request schema and response model answering a
    constant price: what FastAPI + pydantic cost on this machine, the floor of our path. It
    imports the rest of our web stack too (orjson, prometheus_client; uvicorn runs it), so
    its start to ready is the floor of ours.
(c) ``make_skops_app``: the same model through the skops pipeline's ``model.predict``
    on a pandas DataFrame, the way a plain scikit-learn service would serve it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

# Module level, not inside the factories: FastAPI resolves the (postponed) annotations of
# the routes in this module's globals.
from serve.schemas import PredictRequest, PredictResponse

READY = {"status": "ready"}
FLOOR_PRICE = 200_000.0
# Every price carries its interval (docs/intervals.md); the floor answers a constant one.
FLOOR_INTERVAL = {"low": 150_000.0, "high": 270_000.0, "level": 0.9}


def make_floor_app() -> Any:
    """FastAPI + pydantic only: parse PredictRequest, answer PredictResponse with a constant."""
    # Imported for the start-up floor only: the same web stack as ours, none of the model.
    import orjson  # noqa: F401
    import prometheus_client  # noqa: F401
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/ready")
    async def ready() -> dict[str, str]:
        return READY

    @app.post("/api/v1/predict", response_model=PredictResponse)
    async def predict(body: PredictRequest) -> dict[str, Any]:
        return {
            "predictions": [{"predicted_price": FLOOR_PRICE, "interval": FLOOR_INTERVAL}]
            * len(body.instances),
            "model_name": "floor",
            "model_version": "0",
            "model_alias": None,
            "request_id": None,
        }

    return app


def make_skops_app() -> Any:
    """The skops pipeline (pandas, scikit-learn, LightGBM's sklearn API) behind FastAPI."""
    import json

    import pandas as pd
    from fastapi import FastAPI

    from housing.artifact import load_bundle
    from housing.contract import RAW_FEATURES
    from housing.intervals import Interval
    from housing.serving import SERVING_DIR
    from housing.serving.loader import INTERVAL

    model_dir = Path(os.environ["BENCH_MODEL_DIR"])
    model = load_bundle(model_dir).model
    # The same interval the API serves: the bundle's conformal offsets around each price.
    interval = Interval.from_dict(json.loads((model_dir / SERVING_DIR / INTERVAL).read_text()))
    columns = list(RAW_FEATURES)
    app = FastAPI()

    @app.get("/ready")
    async def ready() -> dict[str, str]:
        return READY

    @app.post("/api/v1/predict", response_model=PredictResponse)
    async def predict(body: PredictRequest) -> dict[str, Any]:
        frame = pd.DataFrame([i.model_dump() for i in body.instances], columns=columns)
        prices = model.predict(frame)
        lows, highs = interval.bounds(prices)
        return {
            "predictions": [
                {
                    "predicted_price": float(p),
                    "interval": {"low": float(lo), "high": float(hi), "level": interval.level},
                }
                for p, lo, hi in zip(prices, lows, highs, strict=True)
            ],
            "model_name": "skops-pipeline",
            "model_version": "0",
            "model_alias": None,
            "request_id": None,
        }

    return app
