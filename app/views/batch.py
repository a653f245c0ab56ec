"""The batch tab: upload, validate before sending, price in chunks of at most max_batch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from app.batch import (
    HIGH_COLUMN,
    LOW_COLUMN,
    PRICE_COLUMN,
    BatchFileError,
    chunk_bounds,
    interval_levels,
    priced_columns,
    read_csv,
    results_csv,
    summarize,
    to_records,
    validate,
)
from app.client import ApiClient, ApiRejectedError, ApiUnavailableError
from app.inputs import CrossRule, FieldSpec
from app.settings import AppSettings
from app.views.common import money, percent, show_unavailable
from app.views.realised import show_realised

MAX_PROBLEMS_SHOWN = 1000


def api_max_batch(model: dict[str, Any]) -> int | None:
    """The API's per-request instance limit from GET /api/v1/model, or None if absent."""
    limit = model.get("max_batch")
    if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
        return limit
    return None


def chunk_size(settings: AppSettings, model: dict[str, Any]) -> int:
    """Rows per request: APP_CHUNK_SIZE, never more than the API's max_batch."""
    limit = api_max_batch(model)
    return settings.chunk_size if limit is None else min(settings.chunk_size, limit)


def render_batch(
    client: ApiClient,
    specs: Sequence[FieldSpec],
    settings: AppSettings,
    model: dict[str, Any],
    rules: Sequence[CrossRule] = (),
) -> None:
    """Upload, validate before sending, price in chunks, summarise and offer a download."""
    st.subheader("Price a CSV of districts")
    names = [spec.name for spec in specs]
    st.caption(
        "Columns: " + ", ".join(f"`{n}`" for n in names) + ". Extra columns are kept in the "
        "results; `ocean_proximity` ignores case and spaces; empty `total_bedrooms` is allowed."
    )
    if api_max_batch(model) is None:
        st.warning(
            "The API does not report `max_batch` in GET /api/v1/model (an older API?): "
            f"sending {settings.chunk_size:,} rows per request (APP_CHUNK_SIZE); lower it if "
            "the API refuses batches that large.",
        )
    template = pd.DataFrame([{spec.name: spec.default for spec in specs}])
    st.download_button(
        "Download a one-row template",
        data=results_csv(template),
        file_name="districts-template.csv",
        mime="text/csv",
        on_click="ignore",
        key="template",
    )
    upload = st.file_uploader("CSV file", type=["csv"], key="batch_file")
    if upload is None:
        return
    try:
        frame = read_csv(upload.getvalue(), max_rows=settings.max_rows)
        validation = validate(frame, specs, rules)
    except BatchFileError as exc:
        st.error(f"`{upload.name}`: {exc}. Nothing has been sent.")
        return

    send_mask = pd.Series(True, index=frame.index)
    if validation.problems.empty:
        st.success(f"All {len(frame):,} rows of `{upload.name}` passed validation.")
    else:
        notice = st.empty()
        st.dataframe(validation.problems.head(MAX_PROBLEMS_SHOWN), hide_index=True)
        if len(validation.problems) > MAX_PROBLEMS_SHOWN:
            st.caption(f"Showing the first {MAX_PROBLEMS_SHOWN:,} problems.")
        skip = st.checkbox("Skip the rows with problems and price the rest", key="batch_skip")
        notice.error(
            f"{len(validation.problems):,} problem(s) in {validation.invalid_rows:,} of "
            f"{len(frame):,} rows (row 1 is the header). "
            + ("Those rows are skipped." if skip else "Nothing has been sent.")
        )
        if not skip:
            return
        send_mask = ~frame.index.isin(validation.problems["row"].to_numpy() - 2)
        if not send_mask.any():
            st.warning("Every row has a problem; there is nothing to price.")
            return

    size = chunk_size(settings, model)
    to_send = int(send_mask.sum())
    key = f"{upload.file_id}:{to_send}"
    if st.button(f"Price {to_send:,} rows", type="primary", key="batch_go"):
        st.session_state.pop("batch_result", None)
        priced = _price_in_chunks(client, validation.instances[send_mask], size)
        if priced is not None:
            columns, levels = priced
            out = frame[send_mask].copy()
            for column in (PRICE_COLUMN, LOW_COLUMN, HIGH_COLUMN):
                out[column] = columns[column].to_numpy()
            st.session_state["batch_result"] = {
                "key": key,
                "frame": out,
                "name": upload.name,
                "levels": sorted(levels),
            }
    result = st.session_state.get("batch_result")
    if result and result["key"] == key:
        _show_batch_results(result["frame"], result["name"], result["levels"])
        show_realised(result["frame"], model, settings, result["levels"])


def _price_in_chunks(
    client: ApiClient, instances: pd.DataFrame, size: int
) -> tuple[pd.DataFrame, set[float]] | None:
    """Send rows chunk by chunk with a progress bar: prices and interval ends by row, and
    the interval levels seen; None (after saying why) on any failure."""
    records = to_records(instances)
    bounds = chunk_bounds(len(records), size)
    progress = st.progress(0.0, text=f"Pricing {len(records):,} rows in {len(bounds)} request(s)")
    predictions: list[dict[str, Any]] = []
    for number, (start, stop) in enumerate(bounds, start=1):
        try:
            body = client.predict(records[start:stop])
        except ApiRejectedError as exc:
            progress.empty()
            _show_batch_rejection(exc, instances.index[start:stop])
            return None
        except ApiUnavailableError as exc:
            progress.empty()
            st.warning(f"Stopped after {start:,} of {len(records):,} rows; no results were kept.")
            show_unavailable(exc, key="retry_batch")
            return None
        predictions.extend(body["predictions"])
        text = f"Request {number}/{len(bounds)}: {stop:,} rows"
        progress.progress(stop / len(records), text=text)
    progress.empty()
    columns = priced_columns(predictions).set_index(instances.index)
    return columns, interval_levels(predictions)


def _show_batch_rejection(exc: ApiRejectedError, chunk_index: pd.Index) -> None:
    rows = []
    for item in exc.fields:
        row = int(chunk_index[item.row]) + 2 if item.row is not None else None
        if item.row is not None and item.row >= len(chunk_index):
            row = None
        rows.append({"row": row, "column": item.name, "problem": item.reason})
    st.error(f"The API rejected the batch: {exc.message}. No results were kept.")
    if rows:
        st.dataframe(pd.DataFrame(rows, columns=["row", "column", "problem"]), hide_index=True)


def _interval_note(frame: pd.DataFrame, levels: Sequence[float]) -> str:
    """What the two interval columns hold, in one line."""
    missing = int(frame[LOW_COLUMN].isna().sum())
    if missing == len(frame):
        return "The API answered no prediction intervals: `interval_low`/`interval_high` are empty."
    shown = " and ".join(percent(level) for level in levels)
    note = (
        f"`{LOW_COLUMN}` and `{HIGH_COLUMN}`: the model's {shown} prediction interval "
        "(a district's value falls inside such an interval that share of the time)."
    )
    if len(levels) > 1:
        note += " The model changed during the batch, so the level differs between rows."
    if missing:
        note += f" {missing:,} rows came without an interval."
    return note


def _show_batch_results(frame: pd.DataFrame, name: str, levels: Sequence[float] = ()) -> None:
    stats = summarize(frame[PRICE_COLUMN])
    st.success(f"Priced {int(stats['count']):,} rows.")
    st.caption(_interval_note(frame, levels))
    cols = st.columns(5)
    for col, (label, key) in zip(
        cols,
        [("Rows", "count"), ("Mean", "mean"), ("Median", "median"), ("Min", "min"), ("Max", "max")],
        strict=True,
    ):
        col.metric(label, f"{stats[key]:,.0f}" if key == "count" else money(stats[key]))
    st.dataframe(
        pd.DataFrame({"statistic": list(stats), "value": list(stats.values())}),
        hide_index=True,
        key="batch_summary",
    )
    chart = (
        alt.Chart(frame[[PRICE_COLUMN]])
        .mark_bar()
        .encode(
            alt.X(f"{PRICE_COLUMN}:Q", bin=alt.Bin(maxbins=30), title="Predicted price (USD)"),
            alt.Y("count():Q", title="Districts"),
        )
    )
    st.altair_chart(chart)
    st.dataframe(frame, hide_index=True, key="batch_table")
    st.download_button(
        "Download results (CSV)",
        data=results_csv(frame),
        file_name=f"{Path(name).stem}-predictions.csv",
        mime="text/csv",
        on_click="ignore",
        key="batch_download",
    )
