"""What the MLflow-free registry readers share: the registry's conventions and their records.

The conventions are written by ``housing.registry.log_and_register`` (which imports MLflow);
the API reads them without MLflow, so they are repeated here and a test pins them equal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

BUNDLE_ARTIFACT_PATH = "bundle"  # the run's artifact directory holding the serving files
SHA_TAG = "artifact_sha256"  # version tag: sha256 of bundle/model.skops
SERVING_SHA_TAG = "serving_sha256"  # version tag: sha256 of the serving bundle (manifest)
METRIC_TAG_PREFIX = "metric."
RECORD_TAG = "promotion.record"  # version tag: run artifact folder of its signed record
CHALLENGER_RECORD_TAG = "challenger.record"  # the same for its latest challenger move
SKIPPED_FILES = frozenset({"model.skops"})  # the API never loads the skops model


def record_tag(alias: str) -> str:
    """The version tag naming the run artifact folder of the version's latest signed record
    for ``alias`` (``champion/<seq>``, ``challenger/<seq>``)."""
    return CHALLENGER_RECORD_TAG if alias == "challenger" else RECORD_TAG


@dataclass(frozen=True)
class AliasTarget:
    """The version an alias points at, as read from the registry (no download)."""

    name: str
    alias: str
    version: str
    run_id: str
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        sha = self.tags.get(SERVING_SHA_TAG) or self.tags.get(SHA_TAG, "")
        return f"{self.version}:{sha}:{self.tags.get(record_tag(self.alias), '')}"

    @property
    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, value in self.tags.items():
            if key.startswith(METRIC_TAG_PREFIX):
                try:
                    number = float(value)
                except ValueError:
                    continue
                if math.isfinite(number):
                    out[key[len(METRIC_TAG_PREFIX) :]] = number
        return out


def wanted(relative: str, target: AliasTarget) -> bool:
    """Whether a file of ``bundle/`` (path relative to it) is downloaded for serving: all but
    the skops model (``target`` is for rules that depend on the version; none today)."""
    del target
    return relative not in SKIPPED_FILES
