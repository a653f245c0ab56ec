"""Promotion gates: the pure rule that decides whether a candidate replaces the champion.

No MLflow here: the rule is a function of arrays (the test targets, the candidate's and the
champion's predictions on the same rows) and the configured limits, so it is unit-tested on
synthetic arrays and the registry code only supplies the numbers.

The rule (docs/governance.md):

1. absolute floors on the candidate's point metrics (``min_r2``, ``max_rmse``);
2. no champion: the first model is promoted when the floors pass;
3. the champion was evaluated on other test rows or another data version: refuse to compare;
4. the champion cannot be scored: fail closed (hold);
5. otherwise a paired bootstrap of ΔRMSE = RMSE(candidate) - RMSE(champion) on the same
   resampled rows; promote only when the upper 95 % bound is <= ``max_delta_rmse``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

PROMOTED, HELD, REFUSED = "promoted", "held", "refused"
GATE_TAG_PREFIX = "gate."
FINGERPRINT_TAG = "test_fingerprint"
DATA_TAG = "data_md5"
_CHUNK = 64  # bootstrap resamples per vectorised block (bounds memory at 64 x n rows)


@dataclass(frozen=True)
class GateConfig:
    """Limits from ``params.yaml`` ``register.gates`` plus the bootstrap's size and seed.

    ``max_delta_rmse`` (USD) is δ: the largest tolerated upper 95 % bound of the paired
    ΔRMSE (the old point-estimate ``max_regression_pct`` compounded; see docs/governance.md).
    """

    min_r2: float
    max_rmse: float
    max_delta_rmse: float = 0.0
    n_resamples: int = 1000
    seed: int = 42
    confidence: float = 0.95

    def __post_init__(self) -> None:
        for name in ("min_r2", "max_rmse", "max_delta_rmse", "confidence"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"register.gates.{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"register.gates.{name} must be finite, got {value!r}")
        if self.max_rmse <= 0:
            raise ValueError(f"register.gates.max_rmse must be > 0, got {self.max_rmse!r}")
        if self.max_delta_rmse < 0:
            raise ValueError(
                f"register.gates.max_delta_rmse must be >= 0, got {self.max_delta_rmse!r}"
            )
        if not 0.5 <= self.confidence < 1:
            raise ValueError(f"gate confidence must be in [0.5, 1), got {self.confidence!r}")
        for name in ("n_resamples", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"register.{name} must be a non-negative int, got {value!r}")
        if self.n_resamples < 100:
            raise ValueError(f"register.n_resamples must be >= 100, got {self.n_resamples!r}")

    @classmethod
    def from_mapping(
        cls, gates: Mapping[str, Any], *, n_resamples: int = 1000, seed: int = 42
    ) -> GateConfig:
        """Build from the ``register.gates`` params section; unknown or missing keys are errors.

        ``n_resamples`` and ``seed`` come from ``register.bootstrap_resamples`` and
        ``register.seed`` (the same bootstrap the stage's report uses).
        """
        if "max_regression_pct" in gates:
            raise ValueError(
                "register.gates.max_regression_pct was removed: set max_delta_rmse, the "
                "tolerated upper 95% bound of the paired RMSE difference (docs/governance.md)"
            )
        expected = {"min_r2", "max_rmse", "max_delta_rmse"}
        missing = sorted(expected - set(gates))
        unknown = sorted(set(gates) - expected)
        problems = [
            text
            for text in (
                f"missing keys {missing}" if missing else "",
                f"unknown keys {unknown}" if unknown else "",
            )
            if text
        ]
        if problems:
            raise ValueError(f"register.gates: {', '.join(problems)}")
        return cls(
            **{key: gates[key] for key in sorted(expected)}, n_resamples=n_resamples, seed=seed
        )


@dataclass(frozen=True)
class Interval:
    """A point estimate and its percentile bootstrap interval (USD)."""

    estimate: float
    low: float
    high: float

    def text(self) -> str:
        return f"{self.estimate:,.0f} [{self.low:,.0f}, {self.high:,.0f}]"


@dataclass(frozen=True)
class PairedBootstrap:
    """RMSE intervals of both models and of their difference, on the same resamples."""

    candidate: Interval
    champion: Interval
    delta: Interval
    n_resamples: int
    seed: int
    confidence: float


@dataclass(frozen=True)
class ChampionEvidence:
    """What the registry knows about the champion for the gate.

    ``predictions`` are the champion's predictions on the candidate's test rows, recomputed
    from its versioned serving bundle; None with ``error`` saying why when it could not be
    scored. ``fingerprint`` and ``data_md5`` come from the champion version's tags.
    """

    version: str
    predictions: np.ndarray | None
    fingerprint: str | None
    data_md5: str | None
    error: str | None = None


@dataclass(frozen=True)
class EvalSet:
    """The candidate's test rows: targets, their fingerprint and the data version."""

    y_true: np.ndarray
    predictions: np.ndarray
    fingerprint: str
    data_md5: str


@dataclass(frozen=True)
class Decision:
    """Outcome of the gates: whether to promote, one sentence saying why, and the evidence.

    ``outcome`` is ``promoted``, ``held`` or ``refused`` (not comparable: other test rows or
    data version). ``bootstrap`` holds the three intervals when a paired comparison ran.
    """

    promote: bool
    reason: str
    outcome: str = ""
    candidate_rmse: Interval | None = None
    bootstrap: PairedBootstrap | None = None
    champion_version: str | None = None

    def __post_init__(self) -> None:
        if not self.outcome:
            object.__setattr__(self, "outcome", PROMOTED if self.promote else HELD)


def _money(value: float) -> str:
    return f"{value:,.0f}"


def test_fingerprint(index: Any, y_true: Any) -> str:
    """sha256 over the test split's row index and target: the identity of the test rows.

    Integer indexes hash as int64, anything else as its strings; targets as float64, so the
    same rows give the same hex digest whatever frame library produced them.
    """
    idx = np.asarray(index)
    digest = hashlib.sha256(b"housing-test-rows-v1\0")
    if idx.dtype.kind in "iu":
        digest.update(np.ascontiguousarray(idx, dtype="<i8").tobytes())
    else:
        digest.update("\0".join(map(str, idx.tolist())).encode())
    digest.update(b"\0target\0")
    digest.update(np.ascontiguousarray(np.asarray(y_true, float), dtype="<f8").tobytes())
    return digest.hexdigest()


test_fingerprint.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _check_arrays(y_true: np.ndarray, *preds: np.ndarray) -> None:
    for pred in preds:
        if pred.shape != y_true.shape:
            raise ValueError(f"predictions have shape {pred.shape}, targets {y_true.shape}")
    if y_true.ndim != 1 or len(y_true) < 2:
        raise ValueError(f"need a 1-d test target with >= 2 rows, got shape {y_true.shape}")


def _rmse(sq: np.ndarray) -> float:
    return float(np.sqrt(sq.mean()))


def paired_bootstrap(
    y_true: Any,
    candidate: Any,
    champion: Any,
    *,
    n_resamples: int,
    seed: int,
    confidence: float = 0.95,
) -> PairedBootstrap:
    """Percentile bootstrap of both RMSEs and of ΔRMSE (candidate - champion), paired.

    Each resample draws one set of row indices and scores both models on it, so the
    difference's interval reflects only how the two models differ, not which rows were drawn.
    """
    y = np.asarray(y_true, float)
    a, b = np.asarray(candidate, float), np.asarray(champion, float)
    _check_arrays(y, a, b)
    if not (np.isfinite(a).all() and np.isfinite(b).all() and np.isfinite(y).all()):
        raise ValueError("targets and predictions must be finite")
    sq_a, sq_b = (a - y) ** 2, (b - y) ** 2
    rng = np.random.default_rng(seed)
    stats_a = np.empty(n_resamples)
    stats_b = np.empty(n_resamples)
    for start in range(0, n_resamples, _CHUNK):
        stop = min(start + _CHUNK, n_resamples)
        idx = rng.integers(0, len(y), size=(stop - start, len(y)))
        stats_a[start:stop] = np.sqrt(sq_a[idx].mean(axis=1))
        stats_b[start:stop] = np.sqrt(sq_b[idx].mean(axis=1))
    q = [(1.0 - confidence) / 2.0, 1.0 - (1.0 - confidence) / 2.0]

    def interval(point: float, stats: np.ndarray) -> Interval:
        lo, hi = np.quantile(stats, q)
        return Interval(point, float(lo), float(hi))

    rmse_a, rmse_b = _rmse(sq_a), _rmse(sq_b)
    return PairedBootstrap(
        candidate=interval(rmse_a, stats_a),
        champion=interval(rmse_b, stats_b),
        delta=interval(rmse_a - rmse_b, stats_a - stats_b),
        n_resamples=n_resamples,
        seed=seed,
        confidence=confidence,
    )


def bootstrap_interval(y_true: Any, pred: Any, *, n_resamples: int, seed: int) -> Interval:
    """RMSE with its 95 % percentile bootstrap interval (same draws as :func:`paired_bootstrap`)."""
    boot = paired_bootstrap(y_true, pred, pred, n_resamples=n_resamples, seed=seed)
    return boot.candidate


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    total = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - pred) ** 2).sum()) / total if total > 0 else float("nan")


SAME_PREDICTIONS_RTOL = 1e-9
"""Predictions this close to the champion's are the same model (held)."""


def evaluate_gates(
    evaluation: EvalSet, champion: ChampionEvidence | None, gates: GateConfig
) -> Decision:
    """Apply the floors, then the comparability checks, then the paired ΔRMSE bound.

    Pure: no registry access. Every exit carries a one-sentence reason; only two exits
    promote (first model past the floors; ΔRMSE upper bound <= δ).
    """
    y = np.asarray(evaluation.y_true, float)
    pred = np.asarray(evaluation.predictions, float)
    _check_arrays(y, pred)
    if not (np.isfinite(pred).all() and np.isfinite(y).all()):
        return Decision(False, "Held: the candidate's test predictions are not all finite.")
    r2 = _r2(y, pred)
    own = bootstrap_interval(y, pred, n_resamples=gates.n_resamples, seed=gates.seed)
    rmse = own.estimate
    if not math.isfinite(r2):
        return Decision(False, "Held: r2 is undefined on a constant test target.", "", own)
    if r2 < gates.min_r2:
        return Decision(False, f"Held: r2 {r2:.4f} is below the floor {gates.min_r2:.4f}.", "", own)
    if rmse > gates.max_rmse:
        return Decision(
            False,
            f"Held: rmse {_money(rmse)} is above the ceiling {_money(gates.max_rmse)}.",
            "",
            own,
        )
    floors = (
        f"r2 {r2:.4f} >= {gates.min_r2:.4f} and rmse {_money(rmse)} <= {_money(gates.max_rmse)}"
    )
    if champion is None:
        return Decision(True, f"Promoted: first model with no champion yet; {floors}.", "", own)
    version = champion.version
    if champion.fingerprint != evaluation.fingerprint:
        return Decision(
            False,
            f"Refused: champion v{version} was evaluated on other test rows "
            f"(fingerprint {str(champion.fingerprint)[:12]} vs {evaluation.fingerprint[:12]}); "
            "not comparable, promote by hand if intended.",
            REFUSED,
            own,
            champion_version=version,
        )
    if champion.data_md5 != evaluation.data_md5:
        return Decision(
            False,
            f"Refused: champion v{version} was trained on data {champion.data_md5}, the "
            f"candidate on {evaluation.data_md5}; not comparable, promote by hand if intended.",
            REFUSED,
            own,
            champion_version=version,
        )
    if champion.predictions is None:
        why = champion.error or "no predictions"
        return Decision(
            False,
            f"Held: champion v{version} could not be scored ({why}); failing closed.",
            HELD,
            own,
            champion_version=version,
        )
    champ = np.asarray(champion.predictions, float)
    if champ.shape != y.shape or not np.isfinite(champ).all():
        return Decision(
            False,
            f"Held: champion v{version}'s predictions have shape {champ.shape} or are not "
            f"finite on the {len(y)} test rows; failing closed.",
            HELD,
            own,
            champion_version=version,
        )
    boot = paired_bootstrap(
        y, pred, champ, n_resamples=gates.n_resamples, seed=gates.seed, confidence=gates.confidence
    )
    delta = boot.delta
    summary = (
        f"paired dRMSE vs champion v{version} {delta.estimate:+,.0f} "
        f"(95% CI {delta.low:+,.0f} to {delta.high:+,.0f}, limit +{gates.max_delta_rmse:,.0f})"
    )
    # Both sides are scored from their serving bundles; a re-registration of the same model
    # differs only by float summation order (~1e-12 relative), which must not count as better.
    if np.allclose(pred, champ, rtol=SAME_PREDICTIONS_RTOL, atol=0):
        return Decision(
            False,
            f"Held: the candidate makes the same predictions as champion v{version} on every "
            f"test row (within a relative {SAME_PREDICTIONS_RTOL:g}).",
            HELD,
            boot.candidate,
            boot,
            version,
        )
    if delta.high > gates.max_delta_rmse:
        return Decision(
            False,
            f"Held: {summary}: the upper bound exceeds the limit.",
            HELD,
            boot.candidate,
            boot,
            version,
        )
    return Decision(
        True, f"Promoted: {summary}; {floors}.", PROMOTED, boot.candidate, boot, version
    )


def evaluate_metrics_only(
    metrics: Mapping[str, float], champion_version: str | None, gates: GateConfig
) -> Decision:
    """The gate when a caller gives point metrics but no test predictions (older callers).

    A first model is promoted when its floors pass; against a champion there is nothing to
    compare paired, so it fails closed.
    """

    def finite(name: str) -> float | None:
        value = metrics.get(name)
        if value is None or isinstance(value, bool):
            return None
        try:
            number = float(value)
        except (TypeError, ValueError):
            return None
        return number if math.isfinite(number) else None

    r2, rmse = finite("r2"), finite("rmse")
    if r2 is None or rmse is None:
        missing = [name for name, value in (("r2", r2), ("rmse", rmse)) if value is None]
        return Decision(
            False, f"Held: the candidate has no finite {' or '.join(missing)} metric to gate on."
        )
    if r2 < gates.min_r2:
        return Decision(False, f"Held: r2 {r2:.4f} is below the floor {gates.min_r2:.4f}.")
    if rmse > gates.max_rmse:
        return Decision(
            False, f"Held: rmse {_money(rmse)} is above the ceiling {_money(gates.max_rmse)}."
        )
    floors = (
        f"r2 {r2:.4f} >= {gates.min_r2:.4f} and rmse {_money(rmse)} <= {_money(gates.max_rmse)}"
    )
    if champion_version is None:
        return Decision(True, f"Promoted: first model with no champion yet; {floors}.")
    return Decision(
        False,
        f"Held: no test predictions were given to compare with champion v{champion_version} "
        "(paired gate); failing closed.",
        champion_version=champion_version,
    )


def gate_tags(decision: Decision, evaluation: EvalSet, gates: GateConfig) -> dict[str, str]:
    """The decision and its evidence as version tags (strings), for the registry and report."""
    tags = {
        f"{GATE_TAG_PREFIX}decision": decision.outcome,
        f"{GATE_TAG_PREFIX}reason": decision.reason,
        f"{GATE_TAG_PREFIX}max_delta_rmse": repr(float(gates.max_delta_rmse)),
        f"{GATE_TAG_PREFIX}n_resamples": str(gates.n_resamples),
        f"{GATE_TAG_PREFIX}seed": str(gates.seed),
        f"{GATE_TAG_PREFIX}champion_version": decision.champion_version or "",
        FINGERPRINT_TAG: evaluation.fingerprint,
    }

    def put(prefix: str, interval: Interval | None) -> None:
        if interval is not None:
            tags[f"{GATE_TAG_PREFIX}{prefix}"] = repr(round(interval.estimate, 3))
            tags[f"{GATE_TAG_PREFIX}{prefix}_ci95_low"] = repr(round(interval.low, 3))
            tags[f"{GATE_TAG_PREFIX}{prefix}_ci95_high"] = repr(round(interval.high, 3))

    put("rmse", decision.candidate_rmse)
    if decision.bootstrap is not None:
        put("champion_rmse", decision.bootstrap.champion)
        put("delta_rmse", decision.bootstrap.delta)
    return tags


def decision_report(decision: Decision) -> dict[str, Any]:
    """The decision as plain JSON data (for reports/register/registration.json)."""

    def interval(value: Interval | None) -> dict[str, float] | None:
        return (
            None
            if value is None
            else {"estimate": value.estimate, "low": value.low, "high": value.high}
        )

    boot = decision.bootstrap
    return {
        "outcome": decision.outcome,
        "promote": decision.promote,
        "reason": decision.reason,
        "champion_version": decision.champion_version,
        "candidate_rmse": interval(decision.candidate_rmse),
        "champion_rmse": interval(boot.champion) if boot else None,
        "delta_rmse": interval(boot.delta) if boot else None,
    }
