"""Hyperparameter sweeps declared in W&B syntax, run by an embedded Optuna engine or by W&B.

``parse_sweep_config`` validates the declaration; ``run_sweep`` searches it with an objective
that reports one score per CV fold, so Hyperband can prune hopeless trials.

The names below load on first use (PEP 562), so importing the declaration's parser
(``housing.sweep.config``, what ``housing-params check`` needs) does not import Optuna.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "ParamSpec": "config",
    "SweepConfigError": "config",
    "SweepSpec": "config",
    "parse_sweep_config": "config",
    "wandb_sweep_config": "config",
    "Objective": "engine",
    "Reporter": "engine",
    "SweepRunError": "engine",
    "TrialPruned": "engine",
    "build_pruner": "engine",
    "build_sampler": "engine",
    "effective_n_trials": "engine",
    "make_sweep_id": "engine",
    "run_sweep": "engine",
    "SweepResult": "result",
    "TrialRecord": "result",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """The engine (Optuna, tqdm) and its results load on first use."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from housing.sweep import config, engine, result

    modules = {"config": config, "engine": engine, "result": result}
    value = getattr(modules[_EXPORTS[name]], name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
