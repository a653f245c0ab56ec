"""``monitor``: what ``housing-monitor`` and the alert rules call drift and a realised-error miss.

Not a stage's section: ``housing-monitor`` reads it, and deploy/prometheus/alerts.yml carries
the same numbers (tests/deploy checks they agree). Chosen by measurement (docs/monitoring.md).
"""

from __future__ import annotations

import itertools
import math

from pydantic import Field, field_validator

from housing.params.base import Section


class MonitorParams(Section):
    psi_threshold: float = Field(
        gt=0,
        le=10,
        description="A feature (or the predictions) drifted when its population stability "
        "index against the training reference exceeds this.",
    )
    min_instances: int = Field(
        ge=50,
        le=1_000_000,
        description="Fewer live instances than this flag nothing: their PSI is sampling noise.",
    )
    coverage_tolerance: float = Field(
        gt=0,
        lt=1,
        description="Realised interval coverage of a price band below the interval level by "
        "more than this is an alert.",
    )
    min_band_instances: int = Field(
        ge=1,
        le=1_000_000,
        description="A price band's coverage is judged only with at least this many labels.",
    )
    price_bands: list[float] = Field(
        min_length=2,
        description="Edges of the true-price bands (USD) whose coverage is reported, "
        "increasing; .inf closes the last.",
    )

    @field_validator("price_bands")
    @classmethod
    def _increasing(cls, bands: list[float]) -> list[float]:
        if any(math.isnan(b) for b in bands):
            raise ValueError(f"must not contain .nan, got {bands}")
        if any(b <= a for a, b in itertools.pairwise(bands)):
            raise ValueError(f"must be strictly increasing, got {bands}")
        return bands
