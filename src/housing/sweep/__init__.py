"""Hyperparameter sweeps declared in W&B syntax, run by an embedded Optuna engine or by W&B.

``parse_sweep_config`` validates the declaration; ``run_sweep`` searches it with an objective
that reports one score per CV fold, so Hyperband can prune hopeless trials.
"""

from housing.sweep.config import (
    ParamSpec,
    SweepConfigError,
    SweepSpec,
    parse_sweep_config,
    wandb_sweep_config,
)
from housing.sweep.engine import (
    Objective,
    Reporter,
    SweepRunError,
    TrialPruned,
    build_pruner,
    build_sampler,
    effective_n_trials,
    make_sweep_id,
    run_sweep,
)
from housing.sweep.result import SweepResult, TrialRecord

__all__ = [
    "Objective",
    "ParamSpec",
    "Reporter",
    "SweepConfigError",
    "SweepResult",
    "SweepRunError",
    "SweepSpec",
    "TrialPruned",
    "TrialRecord",
    "build_pruner",
    "build_sampler",
    "effective_n_trials",
    "make_sweep_id",
    "parse_sweep_config",
    "run_sweep",
    "wandb_sweep_config",
]
