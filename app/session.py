"""One pooled API client per Streamlit session, and short-lived caches of what the API said."""

from __future__ import annotations

from typing import Any

import streamlit as st

from app.client import ApiClient
from app.settings import AppSettings

CACHE_TTL_SECONDS = 60


def _close(client: ApiClient) -> None:
    client.close()


@st.cache_resource(scope="session", max_entries=1, on_release=_close, show_spinner=False)
def _session_client(api_url: str, connect: float, read: float) -> ApiClient:
    return ApiClient(api_url, connect_timeout=connect, read_timeout=read)


def api_client(settings: AppSettings) -> ApiClient:
    """This session's client: created on its first run, reused by every rerun of the page,
    closed by Streamlit when the session disconnects (or when the settings change)."""
    return _session_client(settings.api_url, settings.connect_timeout, settings.read_timeout)


# The leading underscore keeps the client out of the cache key; the URL is the key.
@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def cached_contract(_client: ApiClient, api_url: str) -> dict[str, Any]:
    """GET /api/v1/contract, remembered for a minute."""
    return _client.contract()


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def cached_model(_client: ApiClient, api_url: str) -> dict[str, Any]:
    """GET /api/v1/model, remembered for a minute."""
    return _client.model()


@st.cache_data(ttl=CACHE_TTL_SECONDS, show_spinner=False)
def cached_context(_client: ApiClient, api_url: str) -> list[dict[str, float]] | None:
    """GET /api/v1/context (map points), remembered for a minute."""
    return _client.context()


def clear_caches() -> None:
    """Forget what the API said, so a retry asks it again."""
    cached_contract.clear()
    cached_model.clear()
    cached_context.clear()
