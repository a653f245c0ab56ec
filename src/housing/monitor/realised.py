"""Realised error: served prices against the true values once they are known.

Drift says the inputs moved; only labels say whether the prices got worse. Given true values,
the prices served for them and their intervals, this reports RMSE, MAE and interval coverage
overall and by band of the true price (:func:`housing.metrics.price_bands`), beside the
champion's test figures. A band's realised coverage below the champion's test coverage in
that band (its ``interval_coverage_<band>`` metric; the interval's level when the champion
has none) by more than ``tolerance`` is flagged, once the band holds ``min_band`` labels.

numpy only and pure: ``housing-monitor --labels`` and the app's batch tab both call it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from housing.metrics import band_coverage_metric, price_bands


def _coverage(y: np.ndarray, low: np.ndarray, high: np.ndarray) -> float:
    return float(np.mean((y >= low) & (y <= high)))


def _figures(y: np.ndarray, price: np.ndarray, low: np.ndarray, high: np.ndarray) -> dict:
    err = price - y
    return {
        "n": len(y),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(np.mean(np.abs(err))),
        "coverage": _coverage(y, low, high),
    }


def realised_error(
    y_true: Any,
    price: Any,
    low: Any,
    high: Any,
    *,
    level: float,
    test_metrics: Mapping[str, Any],
    tolerance: float,
    min_band: int,
) -> dict[str, Any]:
    """The realised-error report of prices ``price`` with intervals [``low``, ``high``]."""
    y, p, lo, hi = (np.asarray(a, float) for a in (y_true, price, low, high))
    if not (len(y) == len(p) == len(lo) == len(hi)):
        raise ValueError("true values, prices and interval ends must have the same length")
    if len(y) == 0:
        raise ValueError("no labelled instance to evaluate")
    if not np.isfinite(y).all():
        raise ValueError("true values must be finite numbers")
    bands = []
    for band, mask in price_bands(y):
        test_cov = test_metrics.get(band_coverage_metric(band))
        expected = float(test_cov) if test_cov is not None else level
        figures = _figures(y[mask], p[mask], lo[mask], hi[mask])
        judged = figures["n"] >= min_band
        bands.append(
            {
                "band": band,
                **figures,
                "test_coverage": None if test_cov is None else float(test_cov),
                "floor": expected - tolerance,
                "judged": judged,
                "flagged": judged and figures["coverage"] < expected - tolerance,
            }
        )

    def test(key: str) -> float | None:
        value = test_metrics.get(key)
        return None if value is None else float(value)

    return {
        **_figures(y, p, lo, hi),
        "level": level,
        "tolerance": tolerance,
        "min_band": min_band,
        "test": {
            "rmse": test("rmse"),
            "mae": test("mae"),
            "coverage": test("interval_coverage"),
            "n": test("n_test"),
        },
        "bands": bands,
        "flagged": [b["band"] for b in bands if b["flagged"]],
    }
