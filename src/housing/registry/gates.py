"""Promotion gates: the pure rule that decides whether a candidate replaces the champion.

No MLflow here: the rule is a function of two metric mappings and the configured limits, so it
is unit-tested on plain dicts and the registry code only supplies the numbers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GateConfig:
    """Limits from ``params.yaml`` ``register.gates``; ``max_regression_pct`` is in percent."""

    min_r2: float
    max_rmse: float
    max_regression_pct: float

    def __post_init__(self) -> None:
        for name in ("min_r2", "max_rmse", "max_regression_pct"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"register.gates.{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"register.gates.{name} must be finite, got {value!r}")
        if self.max_rmse <= 0:
            raise ValueError(f"register.gates.max_rmse must be > 0, got {self.max_rmse!r}")
        if self.max_regression_pct < 0:
            raise ValueError(
                f"register.gates.max_regression_pct must be >= 0, got {self.max_regression_pct!r}"
            )

    @classmethod
    def from_mapping(cls, gates: Mapping[str, Any]) -> GateConfig:
        """Build from the ``register.gates`` params section; unknown or missing keys are errors."""
        expected = {"min_r2", "max_rmse", "max_regression_pct"}
        missing = sorted(expected - set(gates))
        unknown = sorted(set(gates) - expected)
        if missing or unknown:
            raise ValueError(
                f"register.gates: missing keys {missing}, unknown keys {unknown}"
                if missing and unknown
                else f"register.gates: missing keys {missing}"
                if missing
                else f"register.gates: unknown keys {unknown}"
            )
        return cls(**{key: gates[key] for key in sorted(expected)})


@dataclass(frozen=True)
class Decision:
    """Outcome of the gates: whether to promote, and one human sentence saying why."""

    promote: bool
    reason: str


def _metric(metrics: Mapping[str, float], name: str) -> float | None:
    """The finite float value of ``name`` in ``metrics``, or None when absent or not finite."""
    value = metrics.get(name)
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _money(value: float) -> str:
    return f"{value:,.0f}"


def evaluate_gates(
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    gates: GateConfig,
) -> Decision:
    """Apply the absolute floors, then the no-regression rule against the champion's RMSE.

    The candidate needs r2 >= min_r2 and rmse <= max_rmse; with a champion that has an RMSE,
    its RMSE may also be worse than the champion's by at most ``max_regression_pct`` percent.
    """
    r2 = _metric(candidate, "r2")
    rmse = _metric(candidate, "rmse")
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
    champion_rmse = _metric(champion, "rmse") if champion is not None else None
    if champion is None:
        return Decision(True, f"Promoted: first model with no champion yet; {floors}.")
    if champion_rmse is None or champion_rmse <= 0:
        return Decision(
            True, f"Promoted: the champion has no usable rmse to compare against; {floors}."
        )
    change_pct = (rmse - champion_rmse) / champion_rmse * 100.0
    comparison = (
        f"rmse {_money(rmse)} vs champion's {_money(champion_rmse)} ({change_pct:+.2f}%, "
        f"tolerance +{gates.max_regression_pct:g}%)"
    )
    if change_pct > gates.max_regression_pct:
        return Decision(False, f"Held: {comparison} regresses beyond the tolerance.")
    return Decision(True, f"Promoted: {comparison} is within the tolerance; {floors}.")
