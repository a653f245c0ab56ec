"""MLflow tracking and model registry: log + register, promotion gates, rollback, resolve.

Import-light on purpose: nothing here imports MLflow at module level (it costs seconds), so
the API can import :func:`resolve` only when a registry is configured and pay for MLflow then.
"""

from housing.registry.gates import Decision, GateConfig, evaluate_gates
from housing.registry.ops import (
    list_versions,
    log_and_register,
    promote,
    resolve,
    rollback,
    version_for_alias,
)
from housing.registry.records import (
    CHALLENGER,
    CHAMPION,
    MODEL_NAME,
    Registration,
    RegistryError,
    ResolvedModel,
    VersionInfo,
)
from housing.registry.tracking import DEFAULT_TRACKING_URI, resolve_tracking_uri

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "DEFAULT_TRACKING_URI",
    "MODEL_NAME",
    "Decision",
    "GateConfig",
    "Registration",
    "RegistryError",
    "ResolvedModel",
    "VersionInfo",
    "evaluate_gates",
    "list_versions",
    "log_and_register",
    "promote",
    "resolve",
    "resolve_tracking_uri",
    "rollback",
    "version_for_alias",
]
