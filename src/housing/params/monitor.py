"""``monitor``: what ``housing-monitor`` and the alert rules call drift and a realised-error miss.

Not a stage's section: ``housing-monitor`` reads it, and deploy/prometheus/alerts.yml carries
the same numbers (tests/deploy checks they agree). Chosen by measurement (docs/monitoring.md).
"""

from __future__ import annotations

from pydantic import Field

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
        description="Realised interval coverage of a price band below the champion's test "
        "coverage in that band by more than this is an alert.",
    )
    min_band_instances: int = Field(
        ge=1,
        le=1_000_000,
        description="A price band's coverage is judged only with at least this many labels.",
    )
