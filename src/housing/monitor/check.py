"""What ``housing-monitor`` concludes from a feature-log window, labels and the API's counts.

Pure: the command (housing.monitor.cli) reads the files and the API, this module turns them
into the summary (``summary.json``, and the HTML page rendered from it) and its alerts.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from housing.contract import CATEGORICAL_FEATURE, NUMERIC_FEATURES, RAW_FEATURES, TARGET
from housing.monitor.drift import compare
from housing.monitor.realised import realised_error

PRICE_COLUMNS = ("predicted_price", "interval_low", "interval_high")  # the app's download


def columns_of(records: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], np.ndarray]:
    """The logged instances as columns by feature, and their prices."""
    features = [r["features"] for r in records]
    cols: dict[str, Any] = {
        name: np.array([_float(f.get(name)) for f in features], float) for name in NUMERIC_FEATURES
    }
    cols[CATEGORICAL_FEATURE] = [_category(f.get(CATEGORICAL_FEATURE)) for f in features]
    return cols, np.array([float(r["price"]) for r in records], float)


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _category(value: Any) -> str:
    return " ".join(str(value).split()).upper()


def _key(row: Mapping[str, Any]) -> tuple:
    """An instance's identity for joining labels to the log: its nine fields."""
    out: list[Any] = []
    for name in NUMERIC_FEATURES:
        v = _float(row.get(name))
        out.append(None if math.isnan(v) else round(v, 6))
    out.append(_category(row.get(CATEGORICAL_FEATURE)))
    return tuple(out)


def shadow_agreement(records: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """How the shadow challenger's prices compare with the champion's, from the log."""
    both = [r for r in records if r.get("shadow_price") is not None]
    if not both:
        return None
    price = np.array([float(r["price"]) for r in both])
    shadow = np.array([float(r["shadow_price"]) for r in both])
    low = np.array([float(r["low"]) for r in both])
    high = np.array([float(r["high"]) for r in both])
    diff = np.abs(shadow - price)
    times = sorted(r["at"] for r in both)
    return {
        "challenger_version": Counter(str(r.get("shadow_version")) for r in both).most_common(1)[0][
            0
        ],
        "champion_version": Counter(str(r.get("version")) for r in both).most_common(1)[0][0],
        "instances": len(both),
        "mean_abs_diff": float(diff.mean()),
        "mean_rel_diff": float(np.mean(diff / price)),
        "inside_interval_share": float(np.mean((shadow >= low) & (shadow <= high))),
        "window": {"start": times[0], "end": times[-1]},
    }


def labelled_prices(
    labels: Any, records: Sequence[Mapping[str, Any]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, str]:
    """True values and the prices served for them: from the file's own price columns (the
    app's download) when it has them, else joined to the log on the nine fields (the newest
    record of each instance). Returns (y, price, low, high, unmatched rows, source)."""
    if TARGET not in labels.columns:
        raise ValueError(f"the labels have no {TARGET} column (the true values)")
    y_all = labels[TARGET].to_numpy(float)
    if all(c in labels.columns for c in PRICE_COLUMNS):
        frame = labels.dropna(subset=[TARGET, *PRICE_COLUMNS])
        return (
            frame[TARGET].to_numpy(float),
            frame[PRICE_COLUMNS[0]].to_numpy(float),
            frame[PRICE_COLUMNS[1]].to_numpy(float),
            frame[PRICE_COLUMNS[2]].to_numpy(float),
            len(labels) - len(frame),
            "the file's prices",
        )
    missing = [c for c in RAW_FEATURES if c not in labels.columns]
    if missing:
        raise ValueError(
            "the labels carry neither the served prices (" + ", ".join(PRICE_COLUMNS) + ") nor "
            "the nine input fields to join them to the feature log; missing: " + ", ".join(missing)
        )
    served = {_key(r["features"]): r for r in records}  # the newest wins
    rows = labels[list(RAW_FEATURES)].to_dict("records")
    matched = [(i, served.get(_key(row))) for i, row in enumerate(rows)]
    hits = [(i, r) for i, r in matched if r is not None and np.isfinite(y_all[i])]
    idx = np.array([i for i, _ in hits], int)
    pick = [r for _, r in hits]
    return (
        y_all[idx] if len(idx) else np.array([]),
        np.array([float(r["price"]) for r in pick]),
        np.array([float(r["low"]) for r in pick]),
        np.array([float(r["high"]) for r in pick]),
        len(rows) - len(hits),
        "the feature log",
    )


def refusal_shares(monitoring: Mapping[str, Any], api: str) -> dict[str, Any]:
    """Refused requests by field as shares of the API's prediction requests."""
    total = int(monitoring.get("predict_requests", 0))
    by_field = {
        name: {"refused": int(n), "share": (int(n) / total) if total else 0.0}
        for name, n in monitoring.get("refused_by_field", {}).items()
    }
    return {"api": api, "predict_requests": total, "by_field": by_field}


def summarise(
    *,
    reference: Mapping[str, Any] | None,
    records: Sequence[Mapping[str, Any]],
    window: Mapping[str, Any],
    monitor: Any,
    generated_at: str,
    realised: Mapping[str, Any] | None = None,
    refusals: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary and its alerts. ``monitor`` is params.yaml's ``monitor`` section."""
    drift = None
    alerts: list[str] = []
    if reference is not None:
        cols, prices = columns_of(records)
        report = compare(
            reference,
            cols,
            prices if len(prices) else None,
            threshold=monitor.psi_threshold,
            min_rows=monitor.min_instances,
        )
        drift = report.to_dict()
        alerts += [
            f"{name} drifted (PSI {drift['features'][name]['psi']:.3f})" for name in report.flagged
        ]
        if report.prediction_flagged:
            alerts.append(f"predicted prices drifted (PSI {drift['prediction']['psi']:.3f})")
    if realised is not None:
        alerts += [
            f"realised coverage in {b['band']} {b['coverage']:.1%} below {b['floor']:.1%}"
            for b in realised["bands"]
            if b["flagged"]
        ]
    return {
        "generated_at": generated_at,
        "window": dict(window),
        "rows": len(records),
        "model_versions": sorted({str(r.get("version")) for r in records}),
        "thresholds": {
            "psi": monitor.psi_threshold,
            "min_instances": monitor.min_instances,
            "coverage_tolerance": monitor.coverage_tolerance,
            "min_band_instances": monitor.min_band_instances,
        },
        "drift": drift,
        "shadow": shadow_agreement(records),
        "refusals": dict(refusals) if refusals is not None else None,
        "realised": dict(realised) if realised is not None else None,
        "alerts": alerts,
    }


__all__ = [
    "columns_of",
    "labelled_prices",
    "realised_error",
    "refusal_shares",
    "shadow_agreement",
    "summarise",
]
