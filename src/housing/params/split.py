"""``split``: the stratified train/test split and the validation slice of train."""

from __future__ import annotations

import itertools
import math

from pydantic import Field, field_validator

from housing.params.base import SEED_MAX, Section


class SplitParams(Section):
    test_size: float = Field(gt=0, lt=1, description="Share of rows held out for the test.")
    validation_size: float = Field(
        gt=0,
        lt=1,
        description="Share of the non-test rows held out as the validation slice: no choice "
        "sees it; register scores the final model on it (the experiments' honest score).",
    )
    seed: int = Field(ge=0, le=SEED_MAX)
    income_bins: list[float] = Field(
        min_length=3,
        description="Edges of the median_income strata (at least two strata), increasing; "
        ".inf closes the last.",
    )

    @field_validator("income_bins")
    @classmethod
    def _increasing(cls, bins: list[float]) -> list[float]:
        if any(math.isnan(b) for b in bins):
            raise ValueError(f"must not contain .nan, got {bins}")
        if any(b <= a for a, b in itertools.pairwise(bins)):
            raise ValueError(f"must be strictly increasing, got {bins}")
        return bins
