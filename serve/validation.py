"""Contract-driven checks of parsed instances, and their conversion to the model's arrays.

Pydantic has already checked types (finite numbers, strings); every bound, cross-field rule
and the region come from the loaded model's data contract through
:meth:`housing.contract.Contract.violations_array` (vectorised with numpy), so no bound is
re-implemented here: this module only maps the contract's violations to 422 fields.
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
    """One loaded model's contract and category order, applied to request instances."""

    def __init__(self, contract: Contract, category_index: dict[str, int]) -> None:
        self.contract = contract
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
        found = self.contract.violations_array(numeric, limit=_MAX_REPORTED)
        # A violation names every field it involves: one entry per field, same reason.
        problems = [
            {"field": f"instances[{v.row}].{name}", "reason": v.reason}
            for v in found
            for name in v.fields
        ]
        truncated = found.total > len(found) or len(problems) > _MAX_REPORTED
        del problems[_MAX_REPORTED:]
        extra = 0  # unknown categories
        cats: list[int] = []
        index = self._index
        for row, inst in enumerate(instances):
            label = inst.ocean_proximity
            idx = index.get(label)
            if idx is None:
                idx = index.get(normalize_category(label))
            if idx is None:
                extra += 1
                if len(problems) >= _MAX_REPORTED:
                    truncated = True
                else:
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
            raise _invalid(problems, violations=found.total + extra if truncated else None)
        return numeric, cats


def _invalid(fields: list[dict[str, str]], *, violations: int | None = None) -> ApiError:
    """A 422 listing ``fields``; ``violations`` counts every problem when the list is capped."""
    head = ", ".join(f["field"] for f in fields[:3]) + (", …" if len(fields) > 3 else "")
    if violations is None:
        message = f"{len(fields)} invalid field(s): {head}"
    else:
        message = f"{violations} violation(s), first {len(fields)} field(s) shown: {head}"
    return ApiError(422, "validation_error", message, fields)
