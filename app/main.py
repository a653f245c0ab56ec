"""Streamlit page that prices California districts through the prediction API (HTTP only).

Run with ``streamlit run app/main.py`` or ``python -m app``; ``API_URL`` says where the API is.
This module only composes the page: the tabs live in ``app/views/``, the session's HTTP
client and caches in ``app/session.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run app/main.py` puts app/ (not the repo root) on sys.path; make `app.*` importable.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import logging  # noqa: E402

import streamlit as st  # noqa: E402

from app.client import ApiError  # noqa: E402
from app.inputs import ContractError, cross_rules, field_specs  # noqa: E402
from app.redact import redact  # noqa: E402
from app.session import api_client, cached_contract, cached_model  # noqa: E402
from app.settings import AppSettings, SettingsError  # noqa: E402
from app.views.batch import render_batch  # noqa: E402
from app.views.common import show_unavailable  # noqa: E402
from app.views.model import render_model  # noqa: E402
from app.views.monitoring import render_monitoring  # noqa: E402
from app.views.single import render_single  # noqa: E402

logger = logging.getLogger("app.main")


def main() -> None:
    """Compose the page; any API failure ends the run with a message, never a traceback."""
    st.set_page_config(page_title="California housing prices", page_icon="🏠", layout="wide")
    st.title("California district prices")
    try:
        settings = AppSettings.from_env()
    except SettingsError as exc:
        st.error(f"Bad setting: {exc}")
        st.stop()
    st.caption(f"Predictions from the API at {redact(settings.api_url)}")
    client = api_client(settings)
    try:
        client.ready()
        contract = cached_contract(client, settings.api_url)
        model = cached_model(client, settings.api_url)
        specs = field_specs(contract)
    except ApiError as exc:
        show_unavailable(exc, key="retry")
        st.stop()
    except ContractError as exc:
        st.error(f"The API's data contract cannot drive the form: {exc}.")
        st.stop()

    single, batch, panel, monitor = st.tabs(["Single district", "Batch CSV", "Model", "Monitoring"])
    with single:
        render_single(client, specs)
    with batch:
        render_batch(client, specs, settings, model, cross_rules(contract))
    with panel:
        render_model(model)
    with monitor:
        render_monitoring(client)


if __name__ == "__main__":  # Streamlit runs the page as __main__; importing it does nothing
    try:
        main()
    except Exception:  # the last guard: the traceback goes to the log, people get one line
        logger.exception("Unexpected error while rendering the page")
        st.error("Something went wrong in the app; the details are in its log.")
