"""The model tab: identity, metrics and lineage from GET /api/v1/model, credentials redacted."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from app.redact import redact

LINEAGE_KEYS = ("run_id", "git_commit", "data_md5", "sha256", "source", "loaded_at", "max_batch")


def _text(value: Any) -> str:
    return redact(str(value))


def render_model(model: dict[str, Any]) -> None:
    """The champion's identity, training metrics and lineage, as GET /api/v1/model reports."""
    st.subheader(f"{_text(model.get('name', 'model'))} v{_text(model.get('version', '?'))}")
    st.caption(
        f"alias: {_text(model.get('alias') or 'none')} · "
        f"loaded from {_text(model.get('source', '?'))}"
    )
    metrics = model.get("metrics") or {}
    numeric = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    if numeric:
        cols = st.columns(min(len(numeric), 4))
        for position, (name, value) in enumerate(sorted(numeric.items())):
            shown = f"{value:,.0f}" if abs(value) >= 100 else f"{value:.4f}"
            cols[position % len(cols)].metric(_text(name).upper(), shown)
    else:
        st.info("The API reports no training metrics for this model.")
    lineage = pd.DataFrame(
        [{"field": k, "value": _text(model.get(k) or "—")} for k in LINEAGE_KEYS],
    )
    st.markdown("**Lineage**")
    st.dataframe(lineage, hide_index=True, key="lineage")
    if model.get("last_reload_error"):
        st.warning(f"Last reload failed: {_text(model['last_reload_error'])}")
    for problem in model.get("load_errors") or []:
        st.caption(f"Source skipped or failed: {_text(problem)}")
