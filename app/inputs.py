"""Input fields derived from the API's data contract, so the UI never hand-copies bounds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

# Display hints only (labels, and the order of the data set's columns); bounds, categories
# and which fields exist always come from the contract.
_LABELS = {
    "longitude": "Longitude",
    "latitude": "Latitude",
    "housing_median_age": "Median house age (years)",
    "total_rooms": "Total rooms",
    "total_bedrooms": "Total bedrooms",
    "population": "Population",
    "households": "Households",
    "median_income": "Median income (tens of thousands of USD)",
    "ocean_proximity": "Ocean proximity",
}
_STEPS = {"longitude": 0.01, "latitude": 0.01, "median_income": 0.1, "housing_median_age": 1.0}
_COUNT_STEP = 1.0


class ContractError(ValueError):
    """The contract served by the API lacks something the form needs."""


@dataclass(frozen=True)
class FieldSpec:
    """One model input: its kind, bounds or categories, nullability and pre-filled value."""

    name: str
    label: str
    kind: str  # "number" or "category"
    nullable: bool
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] = ()
    default: Any = None
    step: float = 1.0

    def clamp(self, value: float) -> float:
        """Keep a number inside the bounds (a real example may sit exactly on one)."""
        if self.minimum is not None:
            value = max(value, self.minimum)
        if self.maximum is not None:
            value = min(value, self.maximum)
        return value


@dataclass(frozen=True)
class CrossRule:
    """A contract rule ``left <= right`` between two inputs (e.g. bedrooms <= rooms)."""

    left: str
    right: str
    why: str = ""


def cross_rules(contract: Mapping[str, Any]) -> list[CrossRule]:
    """The contract's ``rules`` the app can check before sending (``a <= b``); the API checks
    everything else (and these again)."""
    rules = []
    for rule in contract.get("rules") or []:
        if not isinstance(rule, Mapping):
            continue
        parts = str(rule.get("check", "")).split()
        if len(parts) == 3 and parts[1] == "<=":
            rules.append(CrossRule(parts[0], parts[2], str(rule.get("why") or "")))
    return rules


def normalize_category(value: Any, categories: Sequence[str]) -> str | None:
    """Canonical category for text that matches one ignoring case and whitespace, else None."""
    if not isinstance(value, str):
        return None
    key = " ".join(value.split()).upper()
    for category in categories:
        if " ".join(category.split()).upper() == key:
            return category
    return None


def field_specs(contract: Mapping[str, Any]) -> list[FieldSpec]:
    """The contract's fields in the data set's column order, pre-filled from its example."""
    features = contract.get("features")
    if not isinstance(features, Mapping) or not features:
        raise ContractError("the API's contract has no 'features'")
    example = contract.get("example")
    example = example if isinstance(example, Mapping) else {}
    specs = []
    for name, rule in sorted(features.items(), key=lambda item: _display_rank(item[0])):
        if not isinstance(rule, Mapping):
            raise ContractError(f"contract feature {name!r} is not an object")
        label = _LABELS.get(name, name.replace("_", " ").capitalize())
        nullable = bool(rule.get("nullable", False))
        if rule.get("dtype") == "category":
            categories = tuple(str(c) for c in rule.get("categories") or ())
            if not categories:
                raise ContractError(f"contract feature {name!r} has no categories")
            default = normalize_category(example.get(name), categories) or categories[0]
            specs.append(
                FieldSpec(name, label, "category", nullable, categories=categories, default=default)
            )
            continue
        minimum = _number_or_none(rule.get("min"))
        maximum = _number_or_none(rule.get("max"))
        spec = FieldSpec(
            name,
            label,
            "number",
            nullable,
            minimum=minimum,
            maximum=maximum,
            step=_STEPS.get(name, _COUNT_STEP),
        )
        raw_default = _number_or_none(example.get(name))
        if raw_default is None and not nullable:
            raw_default = minimum if minimum is not None else 0.0
        default = None if raw_default is None else spec.clamp(raw_default)
        specs.append(replace(spec, default=default))
    return specs


def _display_rank(name: str) -> int:
    """Known inputs in the data set's column order (location first), unknown ones after."""
    order = list(_LABELS)
    return order.index(name) if name in order else len(order)


def _number_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
