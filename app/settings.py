"""Runtime settings of the Streamlit app, read from the environment when the page runs."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_API_URL = "http://localhost:8000"


class SettingsError(ValueError):
    """A setting in the environment cannot be used (names the variable and why)."""


@dataclass(frozen=True)
class AppSettings:
    """Where the API is, how long to wait for it and how to split batch uploads."""

    api_url: str = DEFAULT_API_URL
    connect_timeout: float = 3.0
    read_timeout: float = 15.0
    chunk_size: int = 500
    max_rows: int = 100_000
    cache_ttl: float = 60.0
    # Realised error of uploads with true values: params.yaml's monitor section (equal by test).
    coverage_tolerance: float = 0.05
    min_band_instances: int = 50

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AppSettings:
        """Settings from ``API_URL`` and ``APP_*`` variables; bad values raise SettingsError."""
        env = os.environ if environ is None else environ
        api_url = env.get("API_URL", DEFAULT_API_URL).strip().rstrip("/")
        if not api_url.startswith(("http://", "https://")):
            raise SettingsError(f"API_URL must start with http:// or https://, got {api_url!r}")
        return cls(
            api_url=api_url,
            connect_timeout=_positive_float(env, "APP_CONNECT_TIMEOUT", cls.connect_timeout),
            read_timeout=_positive_float(env, "APP_READ_TIMEOUT", cls.read_timeout),
            chunk_size=_positive_int(env, "APP_CHUNK_SIZE", cls.chunk_size),
            max_rows=_positive_int(env, "APP_MAX_ROWS", cls.max_rows),
            cache_ttl=_positive_float(env, "APP_CACHE_TTL", cls.cache_ttl),
            coverage_tolerance=_positive_float(
                env, "APP_COVERAGE_TOLERANCE", cls.coverage_tolerance
            ),
            min_band_instances=_positive_int(env, "APP_MIN_BAND_INSTANCES", cls.min_band_instances),
        )


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise SettingsError(f"{name} must be a positive finite number, got {raw!r}")
    return value


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value <= 0:
        raise SettingsError(f"{name} must be positive, got {raw!r}")
    return value
