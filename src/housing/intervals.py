"""Conformal prediction intervals in log space, calibrated on out-of-fold residuals.

The register stage cross-validates the final model on train and keeps each row's
out-of-fold prediction; the log residuals ``r = log(y) - log(y_oof)`` calibrate two offsets
``lo <= 0 <= hi`` at ``level`` (split-conformal quantiles with the finite-sample
correction). The one model fitted on all of train then serves ``[ŷ·exp(lo), ŷ·exp(hi)]``:
a constant band in log space, so the width in dollars grows with the price.

Pure numpy (no scikit-learn, no pandas): the API's numpy serving path imports it.
Method, guarantee and measured coverage: docs/intervals.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

METHOD = "conformal, out-of-fold log residuals, one model"
# Float slack when (n + 1) * quantile lands on an integer: 0.9 is not exact in binary.
_EPS = 1e-9


def check_level(level: Any) -> float:
    """``level`` as a float strictly inside (0, 1), or a ``ValueError`` saying what is wrong."""
    if isinstance(level, bool) or not isinstance(level, int | float):
        raise ValueError(f"interval level must be a number in (0, 1), e.g. 0.9; got {level!r}")
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(
            f"interval level must lie strictly between 0 and 1 (0.9 = 90 %); got {level!r}"
        )
    return level


def min_calibration_size(level: float) -> int:
    """Fewest residuals for which both corrected order statistics exist at ``level``."""
    alpha = 1.0 - check_level(level)
    return max(1, math.ceil(2.0 / alpha - 1.0 - _EPS))


def log_residuals(y_true: Any, y_pred: Any) -> np.ndarray:
    """``log(y_true) - log(y_pred)``; both must be positive and finite, of the same length."""
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.float64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{y_true.size} targets but {y_pred.size} predictions")
    for name, values in (("targets", y_true), ("predictions", y_pred)):
        if not (np.isfinite(values).all() and (values > 0).all()):
            raise ValueError(f"log residuals need positive, finite {name}")
    return np.log(y_true) - np.log(y_pred)


def conformal_offsets(residuals: Any, level: float) -> tuple[float, float]:
    """Lower and upper split-conformal offsets of ``residuals`` at ``level``.

    With n residuals and ``alpha = 1 - level``, the lower offset is the k_lo-th smallest,
    ``k_lo = floor((n + 1) * alpha / 2)``, the upper the k_hi-th smallest,
    ``k_hi = ceil((n + 1) * (1 - alpha / 2))``. For a new residual exchangeable with these,
    each side misses with probability at most alpha / 2, so ``[lo, hi]`` covers it with
    probability at least ``level`` (and, without ties, at most ``level + 2 / (n + 1)``).
    """
    level = check_level(level)
    r = np.asarray(residuals, dtype=np.float64).ravel()
    if not np.isfinite(r).all():
        raise ValueError("conformal residuals must be finite")
    n = r.size
    alpha = 1.0 - level
    k_lo = math.floor((n + 1) * alpha / 2.0 + _EPS)
    k_hi = math.ceil((n + 1) * (1.0 - alpha / 2.0) - _EPS)
    if k_lo < 1 or k_hi > n:
        raise ValueError(
            f"{n} residuals are too few for a {level:g} interval: "
            f"need at least {min_calibration_size(level)}"
        )
    ordered = np.sort(r)
    return float(ordered[k_lo - 1]), float(ordered[k_hi - 1])


@dataclass(frozen=True)
class Interval:
    """A calibrated interval: prices ``[ŷ·exp(log_low), ŷ·exp(log_high)]`` at ``level``."""

    level: float
    log_low: float
    log_high: float
    n_calibration: int
    method: str = METHOD

    def __post_init__(self) -> None:
        check_level(self.level)
        if not (math.isfinite(self.log_low) and math.isfinite(self.log_high)):
            raise ValueError("interval offsets must be finite")
        if not self.log_low <= 0.0 <= self.log_high:
            raise ValueError(
                f"interval offsets must satisfy log_low <= 0 <= log_high; "
                f"got {self.log_low!r}, {self.log_high!r}"
            )
        if isinstance(self.n_calibration, bool) or self.n_calibration < 1:
            raise ValueError(f"n_calibration must be a positive count; got {self.n_calibration}")

    def bounds(self, price: Any) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised ``(low, high)`` in USD for point predictions ``price`` (USD)."""
        price = np.asarray(price, dtype=np.float64)
        return price * math.exp(self.log_low), price * math.exp(self.log_high)

    @property
    def relative_width(self) -> float:
        """Width as a share of the point prediction, the same for every district."""
        return math.exp(self.log_high) - math.exp(self.log_low)

    def to_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "log_low": self.log_low,
            "log_high": self.log_high,
            "n_calibration": int(self.n_calibration),
            "method": self.method,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Interval:
        """Parse and validate (``ValueError`` or ``TypeError`` on bad input)."""
        if not isinstance(data, Mapping):
            raise TypeError("an interval must be a JSON object")
        fields = {"level", "log_low", "log_high", "n_calibration", "method"}
        if set(data) - fields:
            raise ValueError(f"unknown interval field(s): {sorted(set(data) - fields)}")
        if fields - {"method"} - set(data):
            raise ValueError(f"interval lacks field(s): {sorted(fields - {'method'} - set(data))}")
        for key in ("log_low", "log_high"):
            if isinstance(data[key], bool) or not isinstance(data[key], int | float):
                raise TypeError(f"interval {key} must be a number")
        if not isinstance(data["n_calibration"], int) or isinstance(data["n_calibration"], bool):
            raise TypeError("interval n_calibration must be an integer")
        return cls(
            level=check_level(data["level"]),
            log_low=float(data["log_low"]),
            log_high=float(data["log_high"]),
            n_calibration=data["n_calibration"],
            method=str(data.get("method", METHOD)),
        )


def calibrate(y_true: Any, y_oof: Any, level: float) -> Interval:
    """The interval at ``level`` from targets and their out-of-fold predictions (USD).

    The offsets are widened, if need be, to contain 0 so that every interval contains its
    point prediction; widening can only raise coverage, so the guarantee still holds.
    """
    residuals = log_residuals(y_true, y_oof)
    lo, hi = conformal_offsets(residuals, level)
    return Interval(
        level=check_level(level),
        log_low=min(lo, 0.0),
        log_high=max(hi, 0.0),
        n_calibration=int(residuals.size),
    )


def coverage(y_true: Any, low: Any, high: Any) -> float:
    """Share of ``y_true`` inside its closed interval ``[low, high]``."""
    y_true = np.asarray(y_true, dtype=np.float64)
    inside = (np.asarray(low) <= y_true) & (y_true <= np.asarray(high))
    if not inside.size:
        raise ValueError("coverage of no rows is undefined")
    return float(inside.mean())
