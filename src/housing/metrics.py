"""Regression metrics in dollars, as reported by the register stage and the leaderboards."""

from __future__ import annotations

from itertools import pairwise

import numpy as np

PRICE_CAP = 500_001.0  # the census data set censors district values at this amount
# Bands of the true price that the register stage and housing-monitor report by.
PRICE_BANDS = (0, 100_000, 200_000, 300_000, 400_000, 500_000, np.inf)
CAPPED_BAND = "capped (500,001)"


def price_bands(y_true: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The non-empty bands of ``PRICE_BANDS`` as (label, mask), the capped districts apart."""
    y_true = np.asarray(y_true, float)
    capped = y_true >= PRICE_CAP
    out = []
    for left, right in pairwise(PRICE_BANDS):
        mask = (y_true >= left) & (y_true < right) & ~capped
        if mask.any():
            upper = "cap" if np.isinf(right) else f"{right / 1000:.0f}k"
            out.append((f"{left / 1000:.0f}k-{upper}", mask))
    if capped.any():
        out.append((CAPPED_BAND, capped))
    return out


def band_coverage_metric(band: str) -> str:
    """The metric name of the interval's test coverage in ``band`` (a :func:`price_bands`
    label): ``interval_coverage_100k_200k``, ``interval_coverage_capped``."""
    slug = "capped" if band == CAPPED_BAND else band.replace("-", "_")
    return f"interval_coverage_{slug}"


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error."""
    diff = np.asarray(y_pred, float) - np.asarray(y_true, float)
    return float(np.sqrt(np.mean(diff**2)))


def regression_report(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE, R², MAPE, weighted MAPE and the share of predictions within 10 %."""
    y_true = np.asarray(y_true, float)
    y_pred = np.asarray(y_pred, float)
    err = y_pred - y_true
    abs_err = np.abs(err)
    ss_res = float(np.sum(err**2))
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    return {
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mae": float(abs_err.mean()),
        "r2": 1.0 - ss_res / ss_tot,
        "mape": float(np.mean(abs_err / y_true)),
        "wmape": float(abs_err.sum() / np.abs(y_true).sum()),
        "within_10pct": float(np.mean(abs_err / y_true <= 0.10)),
    }


def bootstrap_rmse_ci(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 42,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the RMSE."""
    y_true = np.asarray(y_true, float)
    sq = (np.asarray(y_pred, float) - y_true) ** 2
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(sq), size=(n_resamples, len(sq)))
    stats = np.sqrt(sq[idx].mean(axis=1))
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)
