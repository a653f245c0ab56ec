"""Batch uploads: read a CSV, find every row-level problem before sending, chunk, summarise."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from app.client import prediction_interval
from app.inputs import CrossRule, FieldSpec, normalize_category

MISSING_TOKENS = frozenset({"", "na", "nan", "null", "none"})
PROBLEM_COLUMNS = ["row", "column", "value", "problem"]
PRICE_COLUMN = "predicted_price"
# The prediction interval's ends (its level is the served model's: the app says which).
LOW_COLUMN = "interval_low"
HIGH_COLUMN = "interval_high"


class BatchFileError(ValueError):
    """The upload as a whole cannot be used (not CSV, no rows, missing columns, too large)."""


@dataclass(frozen=True)
class Validation:
    """Typed rows ready to send (``instances``) and one line per problem found (``problems``).

    ``row`` in problems is the spreadsheet row: the header is row 1, the first district row 2.
    """

    instances: pd.DataFrame
    problems: pd.DataFrame

    @property
    def invalid_rows(self) -> int:
        """How many distinct rows have at least one problem."""
        return int(self.problems["row"].nunique())


def read_csv(data: bytes, *, max_rows: int) -> pd.DataFrame:
    """Parse an uploaded CSV as text cells, so validation sees exactly what the user wrote."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BatchFileError("the file is not UTF-8 text; save it as CSV (UTF-8)") from None
    if not text.strip():
        raise BatchFileError("the file is empty")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise BatchFileError(f"the file is not valid CSV: {first_line}") from None
    if frame.empty:
        raise BatchFileError("the file has a header but no rows")
    if len(frame) > max_rows:
        raise BatchFileError(f"the file has {len(frame):,} rows; the limit is {max_rows:,}")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def missing_columns(frame: pd.DataFrame, specs: Sequence[FieldSpec]) -> list[str]:
    """Input columns the file lacks (names compared ignoring case and surrounding spaces)."""
    present = {c.lower() for c in frame.columns}
    return [s.name for s in specs if s.name.lower() not in present]


def validate(
    frame: pd.DataFrame, specs: Sequence[FieldSpec], rules: Sequence[CrossRule] = ()
) -> Validation:
    """Check every cell against the contract; never raises for bad cells, it reports them."""
    missing = missing_columns(frame, specs)
    if missing:
        raise BatchFileError(
            "missing column(s): " + ", ".join(missing) + f" (found: {', '.join(frame.columns)})"
        )
    by_lower = {c.lower(): c for c in frame.columns}
    clean: dict[str, pd.Series] = {}
    problems: list[pd.DataFrame] = []
    for spec in specs:
        raw = frame[by_lower[spec.name.lower()]].astype(str).str.strip()
        is_missing = raw.str.lower().isin(MISSING_TOKENS)
        if spec.kind == "category":
            values = raw.map(lambda v, s=spec: normalize_category(v, s.categories))
            bad = values.isna() & ~is_missing
            allowed = ", ".join(spec.categories)
            problems.append(_problems(raw, bad, spec.name, f"must be one of: {allowed}"))
        else:
            values = pd.to_numeric(raw.where(~is_missing), errors="coerce").astype("float64")
            not_number = values.isna() & ~is_missing
            problems.append(_problems(raw, not_number, spec.name, "is not a number"))
            not_finite = values.notna() & ~np.isfinite(values)
            problems.append(_problems(raw, not_finite, spec.name, "must be a finite number"))
            finite = values.notna() & np.isfinite(values)
            if spec.minimum is not None:
                low = finite & (values < spec.minimum)
                problems.append(_problems(raw, low, spec.name, f"must be >= {spec.minimum:g}"))
            if spec.maximum is not None:
                high = finite & (values > spec.maximum)
                problems.append(_problems(raw, high, spec.name, f"must be <= {spec.maximum:g}"))
        if not spec.nullable:
            problems.append(_problems(raw, is_missing, spec.name, "is required"))
        clean[spec.name] = values
    for rule in rules:
        if rule.left in clean and rule.right in clean:
            left, right = clean[rule.left], clean[rule.right]
            broken = left.notna() & right.notna() & (left > right)
            why = f" ({rule.why})" if rule.why else ""
            raw = frame[by_lower[rule.left.lower()]].astype(str).str.strip()
            problems.append(_problems(raw, broken, rule.left, f"must be <= {rule.right}{why}"))
    found = pd.concat(problems, ignore_index=True)
    found = found.sort_values(["row", "column"], kind="stable").reset_index(drop=True)
    return Validation(instances=pd.DataFrame(clean, index=frame.index), problems=found)


def _problems(raw: pd.Series, mask: pd.Series, column: str, problem: str) -> pd.DataFrame:
    hits = raw[mask]
    return pd.DataFrame(
        {
            "row": (hits.index.to_numpy() + 2).astype("int64"),
            "column": column,
            "value": hits.to_numpy(dtype=object),
            "problem": problem,
        },
        columns=PROBLEM_COLUMNS,
    )


def chunk_bounds(total: int, size: int) -> list[tuple[int, int]]:
    """Half-open [start, stop) bounds splitting ``total`` rows into chunks of at most ``size``."""
    if size <= 0:
        raise ValueError("chunk size must be positive")
    return [(start, min(start + size, total)) for start in range(0, total, size)]


def to_records(instances: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: plain floats and strings, None where a nullable value is missing."""
    records = instances.astype(object).where(instances.notna(), None).to_dict("records")
    return [{str(k): v for k, v in row.items()} for row in records]


def summarize(prices: pd.Series) -> dict[str, float]:
    """Count, mean, spread and quantiles of the predicted prices."""
    values = prices.astype("float64")
    return {
        "count": float(values.count()),
        "mean": float(values.mean()),
        "std": float(values.std(ddof=1)) if values.count() > 1 else 0.0,
        "min": float(values.min()),
        "p25": float(values.quantile(0.25)),
        "median": float(values.median()),
        "p75": float(values.quantile(0.75)),
        "max": float(values.max()),
    }


def priced_columns(predictions: Sequence[Any]) -> pd.DataFrame:
    """``predicted_price``, ``interval_low`` and ``interval_high`` of each prediction, in order
    (the interval columns empty where the API answered no interval)."""
    rows = []
    for prediction in predictions:
        interval = prediction_interval(prediction)
        rows.append(
            {
                PRICE_COLUMN: float(prediction["predicted_price"]),
                LOW_COLUMN: interval.low if interval else np.nan,
                HIGH_COLUMN: interval.high if interval else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=[PRICE_COLUMN, LOW_COLUMN, HIGH_COLUMN], dtype="float64")


def interval_levels(predictions: Sequence[Any]) -> set[float]:
    """The distinct interval levels in an answer (one per served model)."""
    return {i.level for i in map(prediction_interval, predictions) if i is not None}


def results_csv(frame: pd.DataFrame) -> bytes:
    """The uploaded rows with ``predicted_price``, ``interval_low`` and ``interval_high``
    columns, as UTF-8 CSV bytes."""
    return frame.to_csv(index=False).encode("utf-8")
