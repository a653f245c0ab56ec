"""Live drift gauges: the last ``window`` scored instances against the model's reference.

An observer of the feature log (serve/feature_log.py): it runs in the log's writer thread,
never on the request path. Each batch's arrays (the matrix and category indices the model
scored, and its prices) are binned against the serving bundle's ``reference.json``
(:class:`housing.monitor.drift.DriftWindow`), and after each group of batches the gauges
are set:

- ``feature_drift_psi{feature}``: each input's population stability index over the window;
- ``prediction_drift_psi``: the same for the predicted prices;
- ``drift_window_instances``: how many instances the window holds (the alert rules and
  ``GET /api/v1/monitoring`` judge nothing below ``monitor.min_instances``).

A new model (hot reload) brings its own reference: the window starts again. A model without
a reference (a bundle written before it existed) clears the gauges.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from housing.contract import CATEGORICAL_FEATURE, NUMERIC_FEATURES
from housing.monitor.drift import PREDICTION, DriftWindow
from serve.feature_log import Batch

logger = logging.getLogger(__name__)


class DriftObserver:
    name = "drift"

    def __init__(self, metrics: Any, window: int) -> None:
        self.metrics = metrics
        self.window_size = window
        self._window: DriftWindow | None = None
        self._model_key: str | None = None
        self._lock = threading.Lock()  # between the writer thread and snapshot readers
        self._psi: dict[str, float] = {}

    def __call__(self, batches: Sequence[Batch]) -> None:
        """Bin a group of batches: each run of batches scored by one model is binned at
        once (one ``DriftWindow.add`` per run, not per request)."""
        runs: list[tuple[Any, list[Batch]]] = []
        for batch in batches:
            if batch.model is None or batch.numeric is None or batch.categories is None:
                continue
            if runs and runs[-1][0] is batch.model:
                runs[-1][1].append(batch)
            else:
                runs.append((batch.model, [batch]))
        for model, run in runs:
            self._for_model(model)
            if self._window is None:
                continue
            numeric = np.concatenate([b.numeric for b in run]) if len(run) > 1 else run[0].numeric
            names = model.predictor.categories
            columns: dict[str, Any] = {
                name: numeric[:, j] for j, name in enumerate(NUMERIC_FEATURES)
            }
            columns[CATEGORICAL_FEATURE] = [names[i] for b in run for i in b.categories]
            prices = np.concatenate([np.asarray(b.prices, float) for b in run])
            self._window.add(columns, prices)
        self._publish()

    def _for_model(self, model: Any) -> None:
        key = model.identity.fingerprint
        if key == self._model_key:
            return
        self._model_key = key
        reference = model.reference
        with self._lock:
            self._window = None if reference is None else DriftWindow(reference, self.window_size)
            self._psi = {}
        self.metrics.feature_drift.clear()
        self.metrics.prediction_drift.set(0)
        self.metrics.drift_window.set(0)
        if reference is None:
            logger.warning("model %s has no drift reference: drift gauges off", key[:12])

    def _publish(self) -> None:
        window = self._window
        if window is None:
            return
        values = window.psi()
        with self._lock:
            self._psi = values
            filled = window.filled
        for name, value in values.items():
            if name == PREDICTION:
                self.metrics.prediction_drift.set(value)
            else:
                self.metrics.feature_drift.labels(name).set(value)
        self.metrics.drift_window.set(filled)

    def snapshot(self) -> dict[str, Any]:
        """The window's PSI by feature and the predictions', and its size (for the API)."""
        with self._lock:
            window = self._window
            psi = dict(self._psi)
        if window is None:
            return {"available": False, "instances": 0, "window": self.window_size}
        prediction = psi.pop(PREDICTION, None)
        return {
            "available": True,
            "instances": window.filled,
            "window": self.window_size,
            "features": psi,
            "prediction": prediction,
        }
