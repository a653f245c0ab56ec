"""Contract-driven checks of parsed instances, and their conversion to the model's arrays.

Pydantic has already checked types (finite numbers, strings); here the loaded model's data
contract supplies the bounds and categories, vectorised with numpy so a 1,000-row batch
costs about as much as one pydantic pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter
from typing import Any

import numpy as np

from housing.contract import CATEGORICAL_FEATURE, NUMERIC_FEATURES, Contract, normalize_category
from serve.errors import ApiError

_MAX_REPORTED = 50


class RequestValidator:
    """Bounds and categories of one loaded model's contract, applied to request instances."""

    def __init__(self, contract: Contract, category_index: dict[str, int]) -> None:
        specs = [contract.features[name] for name in NUMERIC_FEATURES]
        self.low = np.array([-np.inf if s.min is None else s.min for s in specs], dtype=float)
        self.high = np.array([np.inf if s.max is None else s.max for s in specs], dtype=float)
        self.categories = tuple(contract.categories)
        # Only categories both the contract and the model know are accepted.
        self._index = {c: category_index[c] for c in self.categories if c in category_index}
        self._numeric = attrgetter(*NUMERIC_FEATURES)

    def to_arrays(
        self, instances: Sequence[Any], *, max_batch: int
    ) -> tuple[np.ndarray, list[int]]:
        """The (n, 8) float matrix (NaN = missing bedrooms) and category indices, or a 422."""
        n = len(instances)
        if n == 0:
            raise _invalid([{"field": "instances", "reason": "must contain at least 1 instance"}])
        if n > max_batch:
            raise _invalid(
                [
                    {
                        "field": "instances",
                        "reason": f"at most {max_batch} instances per request "
                        f"(got {n}); split the batch",
                    }
                ]
            )
        numeric = np.array([self._numeric(inst) for inst in instances], dtype=float)
        problems: list[dict[str, str]] = []
        bad = (numeric < self.low) | (numeric > self.high)
        if bad.any():
            for row, col in np.argwhere(bad)[:_MAX_REPORTED]:
                problems.append(
                    {
                        "field": f"instances[{row}].{NUMERIC_FEATURES[col]}",
                        "reason": f"must be between {self.low[col]:g} and {self.high[col]:g} "
                        f"(got {numeric[row, col]:g})",
                    }
                )
        cats: list[int] = []
        index = self._index
        for row, inst in enumerate(instances):
            label = inst.ocean_proximity
            idx = index.get(label)
            if idx is None:
                idx = index.get(normalize_category(label))
            if idx is None:
                if len(problems) < _MAX_REPORTED:
                    problems.append(
                        {
                            "field": f"instances[{row}].{CATEGORICAL_FEATURE}",
                            "reason": f"unknown category {label[:64]!r}; expected one of: "
                            + ", ".join(self.categories),
                        }
                    )
                idx = -1
            cats.append(idx)
        if problems:
            raise _invalid(problems)
        return numeric, cats


def _invalid(fields: list[dict[str, str]]) -> ApiError:
    head = ", ".join(f["field"] for f in fields[:3]) + (", …" if len(fields) > 3 else "")
    return ApiError(422, "validation_error", f"{len(fields)} invalid field(s): {head}", fields)
