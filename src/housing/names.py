"""The names ``params.yaml`` may use, in one place: imputers, model families, sweep engines.

The modules that build what these name import them from here (``housing.model``,
``housing.sweep.engine``), and so does the parameter schema (``housing.params``), which must
load in a fraction of a second: this module imports nothing.
"""

from __future__ import annotations

IMPUTERS = ("median", "mean", "knn", "iterative")
# Simplest first: the select stage keeps the simplest family within one SE of the best.
FAMILIES = ("linear", "random_forest", "hist_gradient_boosting", "lightgbm")
ENGINES = ("optuna", "wandb")
