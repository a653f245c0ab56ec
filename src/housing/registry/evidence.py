"""Shadow evidence for ``housing-registry show --alias challenger``, read from a file.

The API scores the challenger in shadow and never writes to the registry; ``housing-monitor``
summarises the agreement in its JSON summary's top-level ``"shadow"`` object::

    {"challenger_version": "3", "champion_version": "2", "instances": 1234,
     "mean_abs_diff": 1234.5, "mean_rel_diff": 0.031, "inside_interval_share": 0.94,
     "window": {"start": "2026-12-01T00:00:00Z", "end": "2026-12-02T00:00:00Z"}}

It is evidence about one version only: shown when ``challenger_version`` is the challenger's,
otherwise the command says there is none for this version. Imports the standard library only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_EVIDENCE = Path("monitoring") / "summary.json"  # relative to the workspace
SHADOW_KEY = "shadow"


class EvidenceError(ValueError):
    """The summary exists but its shadow section cannot be read; the message is one line."""


@dataclass(frozen=True)
class ShadowEvidence:
    """The shadow challenger's agreement with the champion over one window of traffic."""

    challenger_version: str
    champion_version: str
    instances: int
    mean_abs_diff: float
    mean_rel_diff: float
    inside_interval_share: float
    window_start: str
    window_end: str

    @classmethod
    def from_dict(cls, data: Any) -> ShadowEvidence:
        if not isinstance(data, dict):
            raise EvidenceError(f"{SHADOW_KEY!r} is not an object")
        window = data.get("window") or {}
        if not isinstance(window, dict):
            raise EvidenceError("shadow.window is not an object")
        try:
            instances = data["instances"]
            if isinstance(instances, bool) or not isinstance(instances, int) or instances < 0:
                raise EvidenceError("shadow.instances is not a count")
            numbers = {
                key: _number(data[key], key)
                for key in ("mean_abs_diff", "mean_rel_diff", "inside_interval_share")
            }
            return cls(
                challenger_version=str(data["challenger_version"]),
                champion_version=str(data.get("champion_version") or "?"),
                instances=instances,
                **numbers,
                window_start=str(window.get("start") or "?"),
                window_end=str(window.get("end") or "?"),
            )
        except KeyError as exc:
            raise EvidenceError(f"shadow.{exc.args[0]} is missing") from None


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EvidenceError(f"shadow.{key} is not a finite number")
    return float(value)


def default_path() -> Path:
    """``monitoring/summary.json`` of the workspace (the main one from a ``--temp`` copy)."""
    from housing.workspace import workspace_root

    return workspace_root() / DEFAULT_EVIDENCE


def read_shadow(path: Path) -> ShadowEvidence | None:
    """The summary's shadow section; None when the file or the section is absent."""
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise EvidenceError(f"cannot read {path}: {exc.strerror}") from None
    try:
        summary = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise EvidenceError(f"{path} is not JSON: {exc}") from None
    if not isinstance(summary, dict) or summary.get(SHADOW_KEY) is None:
        return None
    return ShadowEvidence.from_dict(summary[SHADOW_KEY])


def evidence_lines(path: Path, version: str) -> list[str]:
    """What ``show`` prints about the shadow evidence for challenger ``version``."""
    path = Path(path)
    if path.is_absolute() and path.is_relative_to(Path.cwd()):
        path = path.relative_to(Path.cwd())  # as typed in the workspace
    try:
        shadow = read_shadow(path)
    except EvidenceError as exc:
        return [f"shadow evidence: unreadable ({exc})"]
    if shadow is None:
        return [f"shadow evidence: none for version {version} ({path} has no shadow summary)"]
    if shadow.challenger_version != str(version):
        return [
            f"shadow evidence: none for version {version} ({path} is about version "
            f"{shadow.challenger_version} against champion {shadow.champion_version})"
        ]
    return [
        f"shadow evidence ({path}):",
        f"  window:     {shadow.window_start} .. {shadow.window_end}",
        f"  instances:  {shadow.instances:,} scored by both, against champion "
        f"{shadow.champion_version}",
        f"  mean |diff|: {shadow.mean_abs_diff:,.1f} USD ({shadow.mean_rel_diff:.1%} relative)",
        f"  inside the champion's interval: {shadow.inside_interval_share:.1%}",
    ]
