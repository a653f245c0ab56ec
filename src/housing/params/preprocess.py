"""``preprocess``: the data contract's margins and the imputers compared by CV."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from housing.names import IMPUTERS
from housing.params.base import SEED_MAX, Section

Imputer = Literal[IMPUTERS]  # type: ignore[valid-type]


class PreprocessParams(Section):
    contract_margin: float = Field(
        ge=0, le=10, description="Upper bounds = train max + this share of the train range."
    )
    region_margin_km: float = Field(
        ge=0, le=500, description="How far outside California's outline a district may lie."
    )
    imputers: list[Imputer] = Field(min_length=1, json_schema_extra={"uniqueItems": True})
    cv_folds: int = Field(ge=2, le=20)
    seed: int = Field(ge=0, le=SEED_MAX)
