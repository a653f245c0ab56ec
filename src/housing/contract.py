"""The data contract: which columns a district has, their types, ranges and categories.

The preprocess stage derives the contract from the training split and writes it as JSON;
the pipeline validates both splits against it and the API validates requests against the
same file, so bounds and categories are never copied by hand.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

TARGET = "median_house_value"
NUMERIC_FEATURES: tuple[str, ...] = (
    "longitude",
    "latitude",
    "housing_median_age",
    "total_rooms",
    "total_bedrooms",
    "population",
    "households",
    "median_income",
)
CATEGORICAL_FEATURE = "ocean_proximity"
RAW_FEATURES: tuple[str, ...] = (*NUMERIC_FEATURES, CATEGORICAL_FEATURE)
NULLABLE_FEATURES: frozenset[str] = frozenset({"total_bedrooms"})
# Counts and ages cannot be negative, whatever the data's minimum is.
NON_NEGATIVE: frozenset[str] = frozenset(
    {
        "housing_median_age",
        "total_rooms",
        "total_bedrooms",
        "population",
        "households",
        "median_income",
    }
)
CONTRACT_VERSION = 1


class ContractError(ValueError):
    """A frame breaks the contract; ``violations`` lists every problem found."""

    def __init__(self, violations: list[str], *, what: str = "data") -> None:
        self.violations = violations
        head = f"{what} breaks the data contract ({len(violations)} violation(s))"
        super().__init__(head + ":\n  - " + "\n  - ".join(violations))


def normalize_category(value: object) -> str:
    """Canonical spelling of an ``ocean_proximity`` value: trimmed, inner spaces folded, upper."""
    return " ".join(str(value).split()).upper()


@dataclass(frozen=True)
class FeatureSpec:
    """Type and allowed values of one input column."""

    dtype: str  # "float" or "category"
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dtype": self.dtype, "nullable": self.nullable}
        if self.dtype == "category":
            out["categories"] = list(self.categories)
        else:
            out["min"], out["max"] = self.min, self.max
        return out


@dataclass(frozen=True)
class Contract:
    """Columns, bounds and categories of a district, plus one real example and target bounds."""

    features: dict[str, FeatureSpec]
    target_min: float
    target_max: float
    example: dict[str, Any] = field(default_factory=dict)
    version: int = CONTRACT_VERSION

    @property
    def categories(self) -> tuple[str, ...]:
        return self.features[CATEGORICAL_FEATURE].categories

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "target": TARGET,
            "features": {name: spec.to_dict() for name, spec in self.features.items()},
            "target_range": {"min": self.target_min, "max": self.target_max},
            "example": self.example,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Contract:
        if data.get("version") != CONTRACT_VERSION:
            raise ValueError(f"unsupported contract version {data.get('version')!r}")
        features = {}
        for name, spec in data["features"].items():
            features[name] = FeatureSpec(
                dtype=spec["dtype"],
                nullable=bool(spec.get("nullable", False)),
                min=spec.get("min"),
                max=spec.get("max"),
                categories=tuple(spec.get("categories", ())),
            )
        missing = set(RAW_FEATURES) - set(features)
        if missing:
            raise ValueError(f"contract lacks features {sorted(missing)}")
        rng = data["target_range"]
        return cls(features, float(rng["min"]), float(rng["max"]), dict(data.get("example", {})))


def _round_out(value: float, up: bool) -> float:
    """Round a bound outwards to 4 significant digits so the JSON stays readable."""
    if value == 0:
        return 0.0
    digits = 3 - math.floor(math.log10(abs(value)))
    scale = 10.0**digits
    return (math.ceil if up else math.floor)(value * scale) / scale


def derive_contract(train: pd.DataFrame, *, margin: float) -> Contract:
    """Derive the contract from the training split.

    Numeric bounds are the observed range widened by ``margin`` times its width (never below
    zero for counts), so plausible unseen districts pass while impossible values do not.
    Categories are those seen in training. The example is the real district nearest the
    per-column medians.
    """
    features: dict[str, FeatureSpec] = {}
    for name in NUMERIC_FEATURES:
        col = train[name].astype(float)
        lo, hi = float(col.min()), float(col.max())
        width = hi - lo
        lo, hi = lo - margin * width, hi + margin * width
        if name in NON_NEGATIVE:
            lo = max(lo, 0.0)
        features[name] = FeatureSpec(
            "float",
            nullable=name in NULLABLE_FEATURES,
            min=_round_out(lo, up=False),
            max=_round_out(hi, up=True),
        )
    cats = tuple(sorted(normalize_category(c) for c in train[CATEGORICAL_FEATURE].unique()))
    features[CATEGORICAL_FEATURE] = FeatureSpec("category", categories=cats)

    complete = train.dropna(subset=list(NUMERIC_FEATURES))
    numeric = complete[list(NUMERIC_FEATURES)].to_numpy(float)
    scale = numeric.std(axis=0)
    scale[scale == 0] = 1.0
    dist = np.abs((numeric - np.median(numeric, axis=0)) / scale).sum(axis=1)
    row = complete.iloc[int(np.argmin(dist))]
    example = {name: float(row[name]) for name in NUMERIC_FEATURES}
    example[CATEGORICAL_FEATURE] = normalize_category(row[CATEGORICAL_FEATURE])

    target = train[TARGET].astype(float)
    return Contract(features, float(target.min()), float(target.max()), example)


def validate_frame(frame: pd.DataFrame, contract: Contract, *, with_target: bool) -> list[str]:
    """Return every contract violation in ``frame`` as a readable line (empty when valid)."""
    problems: list[str] = []
    expected = list(RAW_FEATURES) + ([TARGET] if with_target else [])
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    unexpected = [c for c in frame.columns if c not in expected]
    if unexpected:
        problems.append(f"unexpected column(s): {', '.join(unexpected)}")

    for name, spec in contract.features.items():
        if name not in frame.columns:
            continue
        col = frame[name]
        if spec.dtype == "category":
            values = col.dropna().map(normalize_category)
            bad = values[~values.isin(spec.categories)]
            if len(bad):
                shown = ", ".join(repr(v) for v in sorted(set(bad))[:5])
                problems.append(
                    f"{name}: {len(bad)} row(s) with unknown category ({shown}); "
                    f"allowed: {', '.join(spec.categories)}"
                )
            nulls = int(col.isna().sum())
            if nulls:
                problems.append(f"{name}: {nulls} missing value(s); column is not nullable")
            continue
        numeric = pd.to_numeric(col, errors="coerce")
        non_numeric = int((numeric.isna() & col.notna()).sum())
        if non_numeric:
            problems.append(f"{name}: {non_numeric} non-numeric value(s)")
        nulls = int(col.isna().sum())
        if nulls and not spec.nullable:
            problems.append(f"{name}: {nulls} missing value(s); column is not nullable")
        finite = numeric[numeric.notna()]
        infinite = int(np.isinf(finite).sum())
        if infinite:
            problems.append(f"{name}: {infinite} infinite value(s)")
        out = finite[(finite < spec.min) | (finite > spec.max)]
        if len(out):
            problems.append(
                f"{name}: {len(out)} row(s) outside [{spec.min:g}, {spec.max:g}] "
                f"(e.g. row {out.index[0]}: {out.iloc[0]:g})"
            )
    if with_target and TARGET in frame.columns:
        target = pd.to_numeric(frame[TARGET], errors="coerce")
        bad = target[target.isna() | (target <= 0) | (target > contract.target_max)]
        if len(bad):
            problems.append(
                f"{TARGET}: {len(bad)} row(s) missing or outside (0, {contract.target_max:g}]"
            )
    return problems


def check_frame(frame: pd.DataFrame, contract: Contract, *, with_target: bool, what: str) -> None:
    """Raise :class:`ContractError` listing every violation in ``frame``."""
    problems = validate_frame(frame, contract, with_target=with_target)
    if problems:
        raise ContractError(problems, what=what)


def check_schema(frame: pd.DataFrame, *, with_target: bool, what: str) -> None:
    """Structural check used before a contract exists: columns present and numeric."""
    expected = list(RAW_FEATURES) + ([TARGET] if with_target else [])
    problems = []
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    for name in NUMERIC_FEATURES + ((TARGET,) if with_target else ()):
        if name in frame.columns and not pd.api.types.is_numeric_dtype(frame[name]):
            problems.append(f"{name}: expected numbers, found {frame[name].dtype}")
    if problems:
        raise ContractError(problems, what=what)
