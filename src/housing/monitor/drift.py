"""Drift of live values against the training reference (``housing.monitor.reference``).

The statistic is the population stability index over the reference's bins,

    PSI = sum_i (a_i - e_i) * ln(a_i / e_i)

with ``e`` the reference's shares and ``a`` the live ones, each floored at ``SHARE_FLOOR`` (an
empty bin would make it infinite). A numeric feature's bins are its quantile bins plus one
for missing values, so a change in the missing rate counts too; a categorical feature's bins
are its categories plus one for any other value. By convention 0.1 is a small shift and 0.25 a
large one; the thresholds live in ``params.yaml`` (``monitor``).

numpy only: the API imports this module for its live gauges, and the serving image carries
no pandas. Pure: nothing here reads a file or a clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SHARE_FLOOR = 1e-4
PREDICTION = "prediction"


def psi(expected: np.ndarray, actual: np.ndarray, floor: float = SHARE_FLOOR) -> float:
    """The population stability index of ``actual`` shares against ``expected`` ones."""
    e = np.maximum(np.asarray(expected, float), floor)
    a = np.maximum(np.asarray(actual, float), floor)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class Binning:
    """How one feature's values map to bins, and the reference's share of each bin."""

    name: str
    kind: str  # "numeric" or "categorical"
    labels: tuple[str, ...]  # one per bin, for reports
    expected: np.ndarray  # the reference's share of each bin (sums to 1)
    edges: np.ndarray | None = None  # numeric: inner edges (bins = len(edges) + 1, + missing)
    categories: Mapping[str, int] = field(default_factory=dict)  # categorical: bin of each

    @property
    def size(self) -> int:
        return len(self.expected)

    def codes(self, values: Sequence[Any] | np.ndarray) -> np.ndarray:
        """The bin of each value (int16)."""
        if self.kind == "numeric":
            v = np.asarray(values, dtype=float)
            out = np.searchsorted(self.edges, v, side="right")
            out[np.isnan(v)] = self.size - 1  # the missing bin
            return out.astype(np.int16)
        other = self.size - 1
        return np.fromiter(
            (self.categories.get(str(v), other) for v in values), np.int16, count=len(values)
        )

    def shares(self, counts: np.ndarray) -> np.ndarray:
        total = counts.sum()
        return counts / total if total else np.zeros(self.size)


def _numeric_binning(name: str, summary: Mapping[str, Any]) -> Binning:
    edges = np.asarray(summary["edges"], float)
    missing = float(summary.get("missing_rate", 0.0))
    shares = np.asarray(summary["shares"], float)
    expected = np.append(shares / shares.sum() * (1 - missing), missing)
    labels = [f"< {edges[0]:.4g}"] if len(edges) else ["all"]
    labels += [f"{lo:.4g} to {hi:.4g}" for lo, hi in itertools.pairwise(edges)]
    if len(edges):
        labels.append(f">= {edges[-1]:.4g}")
    return Binning(name, "numeric", (*labels, "missing"), expected, edges=edges)


def _categorical_binning(name: str, shares: Mapping[str, float]) -> Binning:
    names = list(shares)
    expected = np.append(np.asarray([shares[n] for n in names], float), 0.0)
    expected /= expected.sum()
    return Binning(
        name,
        "categorical",
        (*names, "other"),
        expected,
        categories={n: i for i, n in enumerate(names)},
    )


def binnings(reference: Mapping[str, Any]) -> list[Binning]:
    """Every feature's binning, numeric first, in the reference's order."""
    out = [_numeric_binning(n, s) for n, s in reference["numeric"].items()]
    out += [_categorical_binning(n, s) for n, s in reference["categorical"].items()]
    return out


def prediction_binning(reference: Mapping[str, Any]) -> Binning:
    return _numeric_binning(PREDICTION, reference["prediction"])


@dataclass(frozen=True)
class Drift:
    """One feature's drift: its PSI and the shares it came from."""

    name: str
    kind: str
    psi: float
    flagged: bool
    labels: tuple[str, ...]
    expected: tuple[float, ...]
    actual: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "psi": round(self.psi, 6),
            "flagged": self.flagged,
            "kind": self.kind,
            "bins": [
                {"bin": label, "reference": round(e, 6), "live": round(a, 6)}
                for label, e, a in zip(self.labels, self.expected, self.actual, strict=True)
            ],
        }


def drift_of(binning: Binning, counts: np.ndarray, threshold: float) -> Drift:
    actual = binning.shares(counts)
    value = psi(binning.expected, actual)
    return Drift(
        binning.name,
        binning.kind,
        value,
        value > threshold,
        binning.labels,
        tuple(float(x) for x in binning.expected),
        tuple(float(x) for x in actual),
    )


@dataclass(frozen=True)
class DriftReport:
    """Every feature's drift and the predictions', over ``rows`` live instances."""

    rows: int
    threshold: float
    min_rows: int
    features: tuple[Drift, ...]
    prediction: Drift | None

    @property
    def enough(self) -> bool:
        """Too few rows make PSI noise: nothing is flagged below ``min_rows``."""
        return self.rows >= self.min_rows

    @property
    def flagged(self) -> list[str]:
        return [d.name for d in self.features if d.flagged] if self.enough else []

    @property
    def prediction_flagged(self) -> bool:
        return self.enough and self.prediction is not None and self.prediction.flagged

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "threshold": self.threshold,
            "min_rows": self.min_rows,
            "enough_rows": self.enough,
            "flagged": self.flagged,
            "prediction_flagged": self.prediction_flagged,
            "features": {d.name: d.to_dict() for d in self.features},
            "prediction": None if self.prediction is None else self.prediction.to_dict(),
        }


def compare(
    reference: Mapping[str, Any],
    columns: Mapping[str, Sequence[Any] | np.ndarray],
    predictions: Sequence[float] | np.ndarray | None,
    *,
    threshold: float,
    min_rows: int,
) -> DriftReport:
    """The drift of live ``columns`` (feature name -> values) and ``predictions``."""
    rows = {len(v) for v in columns.values()}
    if len(rows) > 1:
        raise ValueError(f"columns of different lengths: {sorted(rows)}")
    n = rows.pop() if rows else 0
    features = []
    for b in binnings(reference):
        if b.name not in columns:
            raise ValueError(f"no live values for feature {b.name!r}")
        counts = np.bincount(b.codes(columns[b.name]), minlength=b.size)
        features.append(drift_of(b, counts, threshold))
    pred = None
    if predictions is not None and len(predictions):
        pb = prediction_binning(reference)
        pred = drift_of(pb, np.bincount(pb.codes(predictions), minlength=pb.size), threshold)
    return DriftReport(n, threshold, min_rows, tuple(features), pred)


class DriftWindow:
    """The drift of the last ``size`` instances, updated as they arrive (the API's gauges).

    A ring buffer of bin codes (one int16 per instance and feature) and the counts they
    add up to: adding a batch subtracts the codes it overwrites and adds its own, so the PSI
    of every feature costs a few small array operations, whatever the window size. Not
    thread-safe: one thread (the feature log's writer) feeds it.
    """

    def __init__(self, reference: Mapping[str, Any], size: int) -> None:
        if size < 1:
            raise ValueError(f"the window must hold at least 1 instance, got {size}")
        self.bins = [*binnings(reference), prediction_binning(reference)]
        self.size = size
        self._codes = np.zeros((size, len(self.bins)), np.int16)
        self._counts = [np.zeros(b.size, np.int64) for b in self.bins]
        self._next = 0
        self.filled = 0

    @property
    def names(self) -> list[str]:
        return [b.name for b in self.bins]

    def add(self, columns: Mapping[str, Sequence[Any]], predictions: Sequence[float]) -> None:
        """Add a batch: ``columns`` by feature name, and its predicted prices."""
        n = len(predictions)
        if n == 0:
            return
        codes = np.empty((n, len(self.bins)), np.int16)
        for j, b in enumerate(self.bins):
            values = predictions if b.name == PREDICTION else columns[b.name]
            codes[:, j] = b.codes(values)
        if n > self.size:  # only the newest fit
            codes, n = codes[-self.size :], self.size
        slots = (self._next + np.arange(n)) % self.size
        # Slots are written in order: the first ``size - filled`` are still empty, the rest
        # hold the oldest codes, which leave the counts.
        old = self._codes[slots[self.size - self.filled :]]
        for j, counts in enumerate(self._counts):
            np.subtract.at(counts, old[:, j], 1)
            np.add.at(counts, codes[:, j], 1)
        self._codes[slots] = codes
        self._next = int((self._next + n) % self.size)
        self.filled = min(self.size, self.filled + n)

    def psi(self) -> dict[str, float]:
        """Each feature's PSI over the window, and the predictions' (key ``prediction``)."""
        return {
            b.name: psi(b.expected, b.shares(c))
            for b, c in zip(self.bins, self._counts, strict=True)
        }
