"""Streamlit page that prices California districts through the prediction API (HTTP only).

Run with ``streamlit run app/main.py`` or ``python -m app``; ``API_URL`` says where the API is.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run app/main.py` puts app/ (not the repo root) on sys.path; make `app.*` importable.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import logging  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import Any  # noqa: E402

import altair as alt  # noqa: E402
import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from app.batch import (  # noqa: E402
    PRICE_COLUMN,
    BatchFileError,
    chunk_bounds,
    read_csv,
    results_csv,
    summarize,
    to_records,
    validate,
)
from app.client import ApiClient, ApiError, ApiRejectedError, ApiUnavailableError, FieldError  # noqa: E402
from app.geo import build_deck  # noqa: E402
from app.inputs import ContractError, FieldSpec, field_specs  # noqa: E402
from app.settings import AppSettings, SettingsError  # noqa: E402

logger = logging.getLogger("app.main")

CACHE_TTL_SECONDS = 60
MAX_PROBLEMS_SHOWN = 1000


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _cached_contract(api_url: str, connect: float, read: float) -> dict[str, Any]:
    return ApiClient(api_url, connect_timeout=connect, read_timeout=read).contract()


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _cached_model(api_url: str, connect: float, read: float) -> dict[str, Any]:
    return ApiClient(api_url, connect_timeout=connect, read_timeout=read).model()


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def _cached_context(api_url: str, connect: float, read: float) -> list[dict[str, float]] | None:
    return ApiClient(api_url, connect_timeout=connect, read_timeout=read).context()


def _clear_caches() -> None:
    """Forget what the API said, so a retry asks it again."""
    _cached_contract.clear()
    _cached_model.clear()
    _cached_context.clear()


def _money(value: float) -> str:
    return f"${value:,.0f}"


def show_unavailable(exc: ApiError, *, key: str) -> None:
    """One clear message and a retry button; never a traceback."""
    suffix = f" (request id {exc.request_id})" if exc.request_id else ""
    st.error(f"{exc.message}{suffix}", icon="🚫")
    st.caption("Check that the prediction API is running and has loaded a model, then retry.")
    st.button("Retry", key=key, on_click=_clear_caches, type="primary")


def _number_input(spec: FieldSpec) -> float | None:
    return st.number_input(
        spec.label,
        min_value=spec.minimum,
        max_value=spec.maximum,
        value=spec.default,
        step=spec.step,
        format="%.4f" if spec.step < 1 else "%.0f",
        key=f"input_{spec.name}",
        help=_bounds_help(spec),
    )


def _bounds_help(spec: FieldSpec) -> str:
    low = "-∞" if spec.minimum is None else f"{spec.minimum:g}"
    high = "∞" if spec.maximum is None else f"{spec.maximum:g}"
    optional = " May be left empty." if spec.nullable else ""
    return f"`{spec.name}`, from {low} to {high} (the model's data contract).{optional}"


def render_single(client: ApiClient, specs: Sequence[FieldSpec], settings: AppSettings) -> None:
    """The district form, its price, the model that priced it, and the map."""
    st.subheader("Price one district")
    st.caption("Pre-filled with a real district from the training data; bounds come from the API.")
    values: dict[str, Any] = {}
    slots = {}
    with st.form("district"):
        columns = st.columns(3)
        for position, spec in enumerate(specs):
            with columns[position % 3]:
                if spec.kind == "category":
                    values[spec.name] = st.selectbox(
                        spec.label,
                        spec.categories,
                        index=spec.categories.index(spec.default),
                        key=f"input_{spec.name}",
                    )
                else:
                    values[spec.name] = _number_input(spec)
                    # A number input cannot send "unknown"; nullable inputs get a checkbox.
                    if spec.nullable and st.checkbox(
                        f"{spec.label} unknown", key=f"unknown_{spec.name}"
                    ):
                        values[spec.name] = None
                slots[spec.name] = st.empty()
        submitted = st.form_submit_button("Predict price", type="primary")

    if submitted:
        st.session_state.pop("single_result", None)
        try:
            body = client.predict([values])
        except ApiRejectedError as exc:
            _show_field_errors(exc, slots)
        except ApiUnavailableError as exc:
            show_unavailable(exc, key="retry_single")
        else:
            st.session_state["single_result"] = {"instance": dict(values), "body": body}

    result = st.session_state.get("single_result")
    if result:
        body = result["body"]
        price = float(body["predictions"][0]["predicted_price"])
        st.metric("Predicted median house value", _money(price))
        st.markdown(
            f"Priced by **{body.get('model_name', '?')}** version "
            f"`{body.get('model_version', '?')}` (alias `{body.get('model_alias') or 'none'}`, "
            f"request `{body.get('request_id') or '?'}`)."
        )
        where = result["instance"]
    else:
        price, where = None, values
    context = _cached_context(settings.api_url, settings.connect_timeout, settings.read_timeout)
    if context:
        st.caption(
            f"{len(context):,} training districts coloured by median house value "
            "(blue = cheaper, red = dearer); the district is the green dot."
        )
    else:
        st.caption("The API serves no training districts for context; showing the district only.")
    st.pydeck_chart(
        build_deck(float(where["latitude"]), float(where["longitude"]), context, price=price),
        height=450,
    )


def _show_field_errors(exc: ApiRejectedError, slots: dict[str, Any]) -> None:
    """Put each field's reason under its input; anything unmatched goes in one summary."""
    unmatched: list[FieldError] = []
    by_name: dict[str, list[str]] = {}
    for item in exc.fields:
        if item.name in slots:
            by_name.setdefault(item.name, []).append(item.reason)
        else:
            unmatched.append(item)
    for name, reasons in by_name.items():
        slots[name].error("; ".join(reasons))
    lines = [f"The API rejected the district: {exc.message}"]
    lines += [f"- `{item.field or 'request'}`: {item.reason}" for item in unmatched]
    st.error("\n".join(lines))


def render_batch(
    client: ApiClient,
    specs: Sequence[FieldSpec],
    settings: AppSettings,
    model: dict[str, Any],
) -> None:
    """Upload, validate before sending, price in chunks, summarise and offer a download."""
    st.subheader("Price a CSV of districts")
    names = [spec.name for spec in specs]
    st.caption(
        "Columns: " + ", ".join(f"`{n}`" for n in names) + ". Extra columns are kept in the "
        "results; `ocean_proximity` ignores case and spaces; empty `total_bedrooms` is allowed."
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
        validation = validate(frame, specs)
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

    chunk = _chunk_size(settings, model)
    to_send = int(send_mask.sum())
    key = f"{upload.file_id}:{to_send}"
    if st.button(f"Price {to_send:,} rows", type="primary", key="batch_go"):
        st.session_state.pop("batch_result", None)
        priced = _price_in_chunks(client, validation.instances[send_mask], chunk)
        if priced is not None:
            out = frame[send_mask].copy()
            out[PRICE_COLUMN] = priced.to_numpy()
            st.session_state["batch_result"] = {"key": key, "frame": out, "name": upload.name}
    result = st.session_state.get("batch_result")
    if result and result["key"] == key:
        _show_batch_results(result["frame"], result["name"])


def _chunk_size(settings: AppSettings, model: dict[str, Any]) -> int:
    limit = model.get("max_batch")
    if isinstance(limit, int) and limit > 0:
        return min(settings.chunk_size, limit)
    return settings.chunk_size


def _price_in_chunks(client: ApiClient, instances: pd.DataFrame, size: int) -> pd.Series | None:
    """Send rows chunk by chunk with a progress bar; None (after saying why) on any failure."""
    records = to_records(instances)
    bounds = chunk_bounds(len(records), size)
    progress = st.progress(0.0, text=f"Pricing {len(records):,} rows in {len(bounds)} request(s)")
    prices: list[float] = []
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
        prices.extend(float(p["predicted_price"]) for p in body["predictions"])
        text = f"Request {number}/{len(bounds)}: {stop:,} rows"
        progress.progress(stop / len(records), text=text)
    progress.empty()
    return pd.Series(prices, index=instances.index, name=PRICE_COLUMN)


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


def _show_batch_results(frame: pd.DataFrame, name: str) -> None:
    stats = summarize(frame[PRICE_COLUMN])
    st.success(f"Priced {int(stats['count']):,} rows.")
    cols = st.columns(5)
    for col, (label, key) in zip(
        cols,
        [("Rows", "count"), ("Mean", "mean"), ("Median", "median"), ("Min", "min"), ("Max", "max")],
        strict=True,
    ):
        col.metric(label, f"{stats[key]:,.0f}" if key == "count" else _money(stats[key]))
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


def render_model(model: dict[str, Any]) -> None:
    """The champion's identity, training metrics and lineage, as GET /api/v1/model reports."""
    st.subheader(f"{model.get('name', 'model')} v{model.get('version', '?')}")
    st.caption(f"alias: {model.get('alias') or 'none'} · loaded from {model.get('source', '?')}")
    metrics = model.get("metrics") or {}
    numeric = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    if numeric:
        cols = st.columns(min(len(numeric), 4))
        for position, (name, value) in enumerate(sorted(numeric.items())):
            shown = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.4f}"
            cols[position % len(cols)].metric(name.upper(), shown)
    else:
        st.info("The API reports no training metrics for this model.")
    lineage_keys = ["run_id", "git_commit", "data_md5", "sha256", "source", "loaded_at"]
    lineage = pd.DataFrame(
        [{"field": k, "value": str(model.get(k) or "—")} for k in lineage_keys],
    )
    st.markdown("**Lineage**")
    st.dataframe(lineage, hide_index=True, key="lineage")
    if model.get("last_reload_error"):
        st.warning(f"Last reload failed: {model['last_reload_error']}")


def main() -> None:
    """Compose the page; any API failure ends the run with a message, never a traceback."""
    st.set_page_config(page_title="California housing prices", page_icon="🏠", layout="wide")
    st.title("California district prices")
    try:
        settings = AppSettings.from_env()
    except SettingsError as exc:
        st.error(f"Bad setting: {exc}")
        st.stop()
    st.caption(f"Predictions from the API at {settings.api_url}")
    client = ApiClient(
        settings.api_url,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
    )
    args = (settings.api_url, settings.connect_timeout, settings.read_timeout)
    try:
        client.ready()
        contract = _cached_contract(*args)
        model = _cached_model(*args)
        specs = field_specs(contract)
    except ApiError as exc:
        show_unavailable(exc, key="retry")
        st.stop()
    except ContractError as exc:
        st.error(f"The API's data contract cannot drive the form: {exc}.")
        st.stop()

    single, batch, panel = st.tabs(["Single district", "Batch CSV", "Model"])
    with single:
        render_single(client, specs, settings)
    with batch:
        render_batch(client, specs, settings, model)
    with panel:
        render_model(model)


if __name__ == "__main__":  # Streamlit runs the page as __main__; importing it does nothing
    try:
        main()
    except Exception:  # the last guard: the traceback goes to the log, people get one line
        logger.exception("Unexpected error while rendering the page")
        st.error("Something went wrong in the app; the details are in its log.")
