"""MLflow tracking and model registry: log + register, promotion gates, rollback, resolve.

Import-light on purpose: nothing here imports MLflow at module level (it costs seconds), so
the API can import :func:`resolve` only when a registry is configured and pay for MLflow then.
One module a concern: ``log`` (the MLflow run), ``register`` (version + tags + gate call),
``gates`` (the pure decision), ``champion`` (scoring the champion for the gate), ``promote``
(every move of ``champion``), ``challenger`` (every move of ``challenger``), ``history`` (the
alias event logs), ``lookup`` (reads).
"""

from housing.registry.challenger import drop_challenger, set_challenger
from housing.registry.champion import ChampionScorer, champion_predictions
from housing.registry.gates import (
    ChampionEvidence,
    Decision,
    EvalSet,
    GateConfig,
    Interval,
    PairedBootstrap,
    decision_report,
    evaluate_gates,
    gate_tags,
    paired_bootstrap,
    test_fingerprint,
)
from housing.registry.history import ChampionEvent, actor
from housing.registry.lookup import list_versions, resolve, version_for_alias
from housing.registry.promote import promote, rollback
from housing.registry.records import (
    CHALLENGER,
    CHAMPION,
    MODEL_NAME,
    Registration,
    RegistryError,
    ResolvedModel,
    VersionInfo,
)
from housing.registry.register import log_and_register
from housing.registry.tracking import DEFAULT_TRACKING_URI, resolve_tracking_uri

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "DEFAULT_TRACKING_URI",
    "MODEL_NAME",
    "ChampionEvent",
    "ChampionEvidence",
    "ChampionScorer",
    "Decision",
    "EvalSet",
    "GateConfig",
    "Interval",
    "PairedBootstrap",
    "Registration",
    "RegistryError",
    "ResolvedModel",
    "VersionInfo",
    "actor",
    "champion_predictions",
    "decision_report",
    "drop_challenger",
    "evaluate_gates",
    "gate_tags",
    "list_versions",
    "log_and_register",
    "paired_bootstrap",
    "promote",
    "resolve",
    "resolve_tracking_uri",
    "rollback",
    "set_challenger",
    "test_fingerprint",
    "version_for_alias",
]
