"""Targets of issue 10, PASS/MISS per target, and the markdown table the README quotes."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

SINGLE_MARGIN_MS = 0.15  # single p50 may exceed floor + model by this much
SINGLE_P99_MS = 5.0
RPS_8C = 1200.0
P99_8C_MS = 20.0
BATCH_FACTOR, BATCH_EXTRA_MS = 1.2, 1.0
MODEL_100_MS = 8.0
READY_LOCAL_S, READY_MAKE_SERVE_S = 1.5, 2.5
RSS_MIB = 250.0


@dataclass(frozen=True)
class Target:
    """One target: the measured value, its limit, and PASS/MISS (n/a if not measurable)."""

    name: str
    value: float | None
    limit: float | None
    at_least: bool = False

    @property
    def verdict(self) -> str:
        if self.value is None or self.limit is None or math.isnan(self.value):
            return "n/a"
        ok = self.value >= self.limit if self.at_least else self.value <= self.limit
        return "PASS" if ok else "MISS"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"verdict": self.verdict}


def _get(report: dict[str, Any], *path: str) -> float | None:
    node: Any = report
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return float(node) if isinstance(node, int | float) else None


def _sum(*values: float | None) -> float | None:
    return None if any(v is None for v in values) else float(sum(values))  # type: ignore[arg-type]


def evaluate(report: dict[str, Any]) -> list[Target]:
    """Every target from one run's report."""
    floor_p50 = _get(report, "floor", "single_1c", "p50_ms")
    model_1 = _get(report, "model_time", "1_row", "predict_ms")
    model_100 = _get(report, "model_time", "100_rows", "predict_ms")
    batch_limit = None if model_100 is None else BATCH_FACTOR * model_100 + BATCH_EXTRA_MS
    return [
        Target(
            "single p50 ≤ (a) + (b, 1 row) + 0.15 ms",
            _get(report, "ours", "single_1c", "p50_ms"),
            _sum(floor_p50, model_1, SINGLE_MARGIN_MS),
        ),
        Target("single p99 ≤ 5 ms", _get(report, "ours", "single_1c", "p99_ms"), SINGLE_P99_MS),
        Target(
            "8 connections ≥ 1,200 req/s",
            _get(report, "ours", "single_8c", "rps"),
            RPS_8C,
            at_least=True,
        ),
        Target("8 connections p99 ≤ 20 ms", _get(report, "ours", "single_8c", "p99_ms"), P99_8C_MS),
        Target(
            "100-batch p50 ≤ 1.2 x (b, 100) + 1 ms",
            _get(report, "ours", "batch100_1c", "p50_ms"),
            batch_limit,
        ),
        Target("(b, 100 rows) ≤ 8 ms", model_100, MODEL_100_MS),
        Target(
            "start to ready, local ≤ 1.5 s",
            _get(report, "ours", "start_to_ready_s"),
            READY_LOCAL_S,
        ),
        Target(
            "start to ready, make serve ≤ 2.5 s",
            _get(report, "make_serve", "start_to_ready_s"),
            READY_MAKE_SERVE_S,
        ),
        Target("peak RSS ≤ 250 MiB", _get(report, "ours", "peak_rss_mib"), RSS_MIB),
    ]


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _ratio(top: float | None, bottom: float | None) -> str:
    if top is None or bottom is None or bottom == 0:
        return "—"
    return f"{top / bottom:.2f}x"


# (label, section, key, digits)
_ROWS = [
    ("single, 1 conn, p50 (ms)", "single_1c", "p50_ms", 2),
    ("single, 1 conn, p99 (ms)", "single_1c", "p99_ms", 2),
    ("single, 8 conn, req/s", "single_8c", "rps", 0),
    ("single, 8 conn, p99 (ms)", "single_8c", "p99_ms", 2),
    ("100-batch, 1 conn, p50 (ms)", "batch100_1c", "p50_ms", 2),
    ("start to ready, local (s)", None, "start_to_ready_s", 2),
    ("peak RSS (MiB)", None, "peak_rss_mib", 0),
]


def _value(report: dict[str, Any], side: str, section: str | None, key: str) -> float | None:
    return _get(report, side, section, key) if section else _get(report, side, key)


def markdown(report: dict[str, Any]) -> str:
    """The results as markdown: machine, load, comparison table, model time, targets."""
    machine = report["machine"]
    load = " / ".join(f"{x:.2f}" for x in machine["loadavg_start"])
    model = report.get("model") or {}
    spec = model.get("spec") or {}
    params = spec.get("params") or {}
    bag = int(spec.get("bag", 1))
    trees = ""
    if "n_estimators" in params:
        trees = f", {bag * int(params['n_estimators'])} trees"
        trees += f" ({bag} boosters of {params['n_estimators']})" if bag > 1 else ""
    lines = [
        f"Machine: {machine['cpu']} ({machine['nproc']} cores), Python {machine['python']}; "
        f"load average (1/5/15 min) at start {load}; wrk, {report['duration_s']:g} s per run; "
        f"commit {report.get('commit', '?')}; model {model.get('name', '?')} "
        f"(sha256 {str(model.get('sha256') or '?')[:12]}{trees}).",
        "",
        "| measure | ours | (a) floor | (c) skops | ours / (a) | (c) / ours |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, section, key, digits in _ROWS:
        ours = _value(report, "ours", section, key)
        floor = _value(report, "floor", section, key)
        skops = _value(report, "skops", section, key)
        lines.append(
            f"| {label} | {_fmt(ours, digits)} | {_fmt(floor, digits)} | {_fmt(skops, digits)} "
            f"| {_ratio(ours, floor)} | {_ratio(skops, ours)} |"
        )
    lines.append(
        f"| start to ready, make serve (s) | {_fmt(_get(report, 'make_serve', 'start_to_ready_s'))}"
        " | | | | |"
    )
    for probe in ("health", "ready"):
        p50 = _get(report, "ours", "during_batch1000", probe, "p50_ms")
        p99 = _get(report, "ours", "during_batch1000", probe, "p99_ms")
        lines.append(
            f"| /{probe} during 1,000-batch scoring, p50 / p99 (ms) "
            f"| {_fmt(p50)} / {_fmt(p99)} | | | | |"
        )
    lines += [
        "",
        *_model_time_lines(report.get("model_time", {})),
        "",
        "| target | measured | limit | result |",
        "|---|---:|---:|---|",
    ]
    for target in evaluate(report):
        lines.append(
            f"| {target.name} | {_fmt(target.value)} | {_fmt(target.limit)} | {target.verdict} |"
        )
    return "\n".join(lines)


def _model_time_lines(model_time: dict[str, Any]) -> list[str]:
    if not model_time.get("available"):
        return [f"(b) model time: not measured ({model_time.get('reason', 'unknown')})."]
    lines = [
        "| (b) model in process, median (ms) | whole numpy path | booster alone |",
        "|---|---:|---:|",
    ]
    for key in ("1_row", "100_rows"):
        part = model_time[key]
        lines.append(
            f"| {part['rows']} row(s) | {part['predict_ms']:.3f} | {part['booster_ms']:.3f} |"
        )
    return lines


def write_json(report: dict[str, Any], path: Path) -> None:
    """Atomic write: temp file in the same folder, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
