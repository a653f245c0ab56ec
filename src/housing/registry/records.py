"""Plain records returned by the registry functions, and the one error type they raise."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from housing.registry.gates import Decision

MODEL_NAME = "housing_price_model"
CHAMPION = "champion"
CHALLENGER = "challenger"


class RegistryError(RuntimeError):
    """A registry operation failed for a reason a user can act on; the message is one line."""


@dataclass
class Registration:
    """What :func:`log_and_register` did: the new version, its run, and the gate outcome."""

    name: str
    version: str
    run_id: str
    model_uri: str
    artifact_sha256: str
    decision: Decision
    promoted: bool
    previous_champion: str | None
    gate_tags: dict[str, str] = field(default_factory=dict)
    promotion_sequence: int | None = None  # the champion event's seq when promoted
    challenger_sequence: int | None = None  # the challenger move's seq (held, or a drop)


@dataclass
class VersionInfo:
    """One registered model version as the CLI and the API show it."""

    version: str
    aliases: list[str]
    run_id: str
    metrics: dict[str, float]
    tags: dict[str, str]
    created_at: str


@dataclass
class ResolvedModel:
    """An alias resolved to a version, with its ``bundle/`` artifacts downloaded locally."""

    name: str
    version: str
    alias: str
    run_id: str
    artifact_sha256: str
    bundle_local_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
