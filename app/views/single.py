"""The single-district tab: a form bounded by the contract, its price, and the map."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from app.client import (
    ApiClient,
    ApiRejectedError,
    ApiUnavailableError,
    FieldError,
    prediction_interval,
)
from app.geo import build_deck
from app.inputs import FieldSpec
from app.session import cached_context
from app.views.common import money, percent, show_unavailable


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


def render_single(client: ApiClient, specs: Sequence[FieldSpec]) -> None:
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
        prediction = body["predictions"][0]
        price = float(prediction["predicted_price"])
        interval = prediction_interval(prediction)
        price_col, interval_col = st.columns(2)
        price_col.metric("Predicted median house value", money(price))
        if interval is None:
            interval_col.caption("The API answered no prediction interval for this price.")
        else:
            interval_col.metric(
                f"{percent(interval.level)} prediction interval",
                f"{money(interval.low)} to {money(interval.high)}",
                help=(
                    "A district's value falls inside such an interval "
                    f"{percent(interval.level)} of the time (calibrated on training districts "
                    "the model did not see); it widens with the price."
                ),
            )
        st.markdown(
            f"Priced by **{body.get('model_name', '?')}** version "
            f"`{body.get('model_version', '?')}` (alias `{body.get('model_alias') or 'none'}`, "
            f"request `{body.get('request_id') or '?'}`)."
        )
        where = result["instance"]
    else:
        price, where = None, values
    context = cached_context(client, client.base_url)
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
        # A cross-field rule may name several inputs ("total_bedrooms,total_rooms").
        names = [n for n in item.names if n in slots]
        for name in names:
            by_name.setdefault(name, []).append(item.reason)
        if not names:
            unmatched.append(item)
    for name, reasons in by_name.items():
        slots[name].error("; ".join(reasons))
    lines = [f"The API rejected the district: {exc.message}"]
    lines += [f"- `{item.field or 'request'}`: {item.reason}" for item in unmatched]
    st.error("\n".join(lines))
