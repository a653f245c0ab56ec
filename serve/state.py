"""Everything the app builds at start-up, kept on `app.state.serve` for the dependencies."""

from __future__ import annotations

from dataclasses import dataclass

from serve.config import Settings
from serve.drift import DriftObserver
from serve.feature_log import FeatureLog
from serve.metrics import ServeMetrics
from serve.model_store import ModelStore, Reloader
from serve.prediction_log import PredictionLogger
from serve.shadow import Shadow


@dataclass
class ServeState:
    settings: Settings
    metrics: ServeMetrics
    store: ModelStore
    reloader: Reloader
    prediction_log: PredictionLogger | None
    feature_log: FeatureLog | None = None  # the log and its observers' thread
    drift: DriftObserver | None = None
    shadow: Shadow | None = None
