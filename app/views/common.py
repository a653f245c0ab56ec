"""Pieces every tab uses: money formatting and the "API unavailable" message with a retry."""

from __future__ import annotations

import streamlit as st

from app.client import ApiError
from app.redact import redact
from app.session import clear_caches


def money(value: float) -> str:
    return f"${value:,.0f}"


def percent(share: float) -> str:
    """0.9 -> '90%', 0.975 -> '97.5%' (an interval's level, without spurious rounding)."""
    return f"{share * 100:g}%"


def show_unavailable(exc: ApiError, *, key: str) -> None:
    """One clear message and a retry button; never a traceback."""
    suffix = f" (request id {exc.request_id})" if exc.request_id else ""
    st.error(f"{redact(exc.message)}{suffix}", icon="🚫")
    st.caption("Check that the prediction API is running and has loaded a model, then retry.")
    st.button("Retry", key=key, on_click=clear_caches, type="primary")
