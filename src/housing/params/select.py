"""``select``: the model families compared, each after the same search, by CV on train."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from housing.names import FAMILIES
from housing.params.base import SEED_MAX, Section

Family = Literal[FAMILIES]  # type: ignore[valid-type]


class SelectParams(Section):
    families: list[Family] = Field(
        min_length=1,
        json_schema_extra={"uniqueItems": True},
        description="Candidates, simplest first: ties within one SE go to the earlier one.",
    )
    n_trials: int = Field(ge=1, le=10_000)
    cv_folds: int = Field(ge=2, le=20)
    seed: int = Field(ge=0, le=SEED_MAX, description="Must differ from sweep.seed.")

    @field_validator("families")
    @classmethod
    def _once(cls, families: list[str]) -> list[str]:
        repeated = sorted({f for f in families if families.count(f) > 1})
        if repeated:
            raise ValueError(f"must name each family once, got {', '.join(repeated)} twice")
        return families
