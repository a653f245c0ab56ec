"""The reference a drift check compares live traffic with: summaries of the training split.

Written by the register stage into the serving bundle (``serving/reference.json``, listed in
its manifest and so signed with the rest of the champion). Summaries only, never a raw row:

- each numeric feature: the edges of ``bins`` quantile bins over its known values, the
  share of training rows in each bin (not exactly 1/bins: ties), and its missing rate;
- each categorical feature: the share of every category;
- the model's out-of-fold predictions (prices no row was fitted on): quantile bin edges and
  shares, for prediction drift.

Live values are binned against these edges (``searchsorted``), so a drift statistic (PSI)
costs a few comparisons per value. Pure and deterministic: rounded to 6 significant digits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

REFERENCE_VERSION = 1


def _round(values: np.ndarray) -> list[float]:
    return [float(f"{v:.6g}") for v in np.asarray(values, float)]


def numeric_summary(values: np.ndarray, bins: int) -> dict[str, Any]:
    """Quantile-bin edges (inner edges: ``bins - 1`` of them), bin shares, missing rate."""
    values = np.asarray(values, float)
    known = values[~np.isnan(values)]
    if known.size == 0:
        raise ValueError("no known value to summarise")
    inner = np.unique(np.quantile(known, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(inner, known, side="right"), minlength=len(inner) + 1)
    return {
        "edges": _round(inner),
        "shares": _round(counts / known.size),
        "missing_rate": float(f"{1 - known.size / values.size:.6g}"),
        "min": float(f"{known.min():.6g}"),
        "max": float(f"{known.max():.6g}"),
    }


def category_shares(values: pd.Series) -> dict[str, float]:
    shares = values.astype("string").fillna("<missing>").value_counts(normalize=True)
    return {str(k): float(f"{v:.6g}") for k, v in sorted(shares.items())}


def build_reference(
    frame: pd.DataFrame,
    predictions: np.ndarray,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    bins: int = 10,
) -> dict[str, Any]:
    """The reference of ``frame`` (the training split's features) and of ``predictions``."""
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    return {
        "version": REFERENCE_VERSION,
        "rows": len(frame),
        "bins": bins,
        "numeric": {name: numeric_summary(frame[name].to_numpy(float), bins) for name in numeric},
        "categorical": {name: category_shares(frame[name]) for name in categorical},
        "prediction": numeric_summary(np.asarray(predictions, float), bins),
    }
