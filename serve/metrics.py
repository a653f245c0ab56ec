"""Prometheus metrics of one app instance (its own registry, so test apps never collide)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class ServeMetrics:
    """Requests and latency by route and status, predictions, model version, reloads."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Request latency by route, method and status.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.predictions = Counter(
            "predictions_total", "Instances priced.", ["model_version"], registry=self.registry
        )
        self.model_info = Gauge(
            "model_info",
            "The served model (value 1): name, version, alias, source, sha256.",
            ["name", "version", "alias", "source", "sha256"],
            registry=self.registry,
        )
        self.model_loaded = Gauge(
            "model_loaded", "1 when a model is loaded and serving.", registry=self.registry
        )
        self.reloads = Counter(
            "model_reloads_total", "Models swapped in by hot reload.", registry=self.registry
        )
        self.reload_failures = Counter(
            "model_reload_failures_total",
            "Reload checks or loads that failed.",
            registry=self.registry,
        )
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._prediction_children: dict[str, Any] = {}
        self.prediction_log_dropped = Counter(
            "prediction_log_dropped_total",
            "Prediction-statistics records dropped because the logging queue was full.",
            registry=self.registry,
        )
        self.feature_log_dropped = Counter(
            "feature_log_dropped_total",
            "Feature-log records dropped because its queue was full.",
            registry=self.registry,
        )
        self.feature_log_errors = Counter(
            "feature_log_errors_total",
            "Feature-log writes that failed (read-only or full disk); requests are unaffected.",
            registry=self.registry,
        )
        self.feature_log_written = Counter(
            "feature_log_written_total",
            "Scored instances written to the feature log (after sampling).",
            registry=self.registry,
        )

        # Drift of the last DRIFT_WINDOW instances against the model's training reference
        # (serve/drift.py); the alert rules in deploy/prometheus/alerts.yml read these.
        self.feature_drift = Gauge(
            "feature_drift_psi",
            "Population stability index of an input over the drift window, against the "
            "training data's reference.",
            ["feature"],
            registry=self.registry,
        )
        self.prediction_drift = Gauge(
            "prediction_drift_psi",
            "Population stability index of the predicted prices over the drift window, "
            "against the training data's out-of-fold prices.",
            registry=self.registry,
        )
        self.drift_window = Gauge(
            "drift_window_instances",
            "Instances in the drift window (PSI is judged from monitor.min_instances).",
            registry=self.registry,
        )
        self.refusals = Counter(
            "refused_requests_total",
            "Requests refused with a 4xx, by field the error names (a request naming several "
            "fields counts once for each; instances[i].x counts as x).",
            ["field"],
            registry=self.registry,
        )

        # The shadow challenger (serve/shadow.py): agreement with the champion, as sums so
        # that any window's mean is a ratio of increases (deploy/prometheus/alerts.yml).
        self.shadow_loaded = Gauge(
            "shadow_loaded",
            "1 while a verified challenger scores in shadow.",
            registry=self.registry,
        )
        self.shadow_info = Gauge(
            "shadow_info",
            "The shadow challenger (value 1): its version and whether it is signed.",
            ["version", "signed"],
            registry=self.registry,
        )
        self.shadow_scored = Counter(
            "shadow_scored",
            "Instances priced by the champion and the shadow challenger.",
            registry=self.registry,
        )
        self.shadow_abs_diff = Counter(
            "shadow_abs_diff_dollars",
            "Sum of |challenger - champion| prices (USD) over the shadow's instances.",
            registry=self.registry,
        )
        self.shadow_rel_diff = Counter(
            "shadow_rel_diff",
            "Sum of |challenger - champion| / champion over the shadow's instances.",
            registry=self.registry,
        )
        self.shadow_inside = Counter(
            "shadow_inside_interval",
            "Shadow instances whose challenger price lies inside the champion's interval.",
            registry=self.registry,
        )

    def count_refusal(self, fields: Iterable[str]) -> None:
        for name in sorted(set(fields)):
            self.refusals.labels(name).inc()

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request and its latency (the labelled children are cached per series)."""
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            labels = (route, method, str(status))
            children = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def count_predictions(self, version: str, count: int) -> None:
        child = self._prediction_children.get(version)
        if child is None:
            child = self._prediction_children[version] = self.predictions.labels(version)
        child.inc(count)

    def set_model(self, name: str, version: str, alias: str | None, source: str, sha256: str):
        """Point the model_info gauge at the new model only."""
        self.model_info.clear()
        self.model_info.labels(name, version, alias or "", source, sha256[:12]).set(1)
        self.model_loaded.set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
