"""``sweep``: the Bayesian search of the chosen family, declared in W&B sweep syntax.

The declaration itself (``config`` with one family's ``spaces`` entry as its parameters) is
checked by the sweep's own parser (:func:`housing.sweep.config.parse_sweep_config`), the one
owner of W&B syntax; this module types the rest and names the parser's findings by their
``params.yaml`` keys.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_serializer, model_validator

from housing.names import ENGINES, FAMILIES
from housing.params.base import SEED_MAX, Section, invalid
from housing.sweep.config import DISTRIBUTIONS, SweepConfigError, parse_sweep_config

Family = Literal[FAMILIES]  # type: ignore[valid-type]
Engine = Literal[ENGINES]  # type: ignore[valid-type]
Distribution = Literal[DISTRIBUTIONS]  # type: ignore[valid-type]
Number = int | float


class SpaceParam(Section):
    """One hyperparameter's range, as W&B writes it: ``{distribution, min, max}``,
    ``{value}`` or ``{values}``."""

    distribution: Distribution | None = None
    min: Number | None = None
    max: Number | None = None
    q: Number | None = None
    value: Any = None
    values: list[Any] | None = None
    probabilities: list[float] | None = None

    @model_serializer(mode="wrap")
    def _as_written(self, handler: Any) -> dict[str, Any]:
        """The keys the file set, as the W&B service and the parser expect them."""
        return {k: v for k, v in handler(self).items() if v is not None}


class BaggingParams(Section):
    sizes: list[int] = Field(
        min_length=1, description="Bag sizes to compare (boosters averaged); must include 1."
    )
    max_rounds: int = Field(
        ge=1, description="Serving budget: a bag's total boosting rounds stay within this."
    )


class SearchParams(Section):
    """What the select stage reads of this section: the declaration and its resource step
    (the other keys are the sweep stage's, checked by :class:`SweepParams`)."""

    model_config = Section.model_config | {"extra": "ignore"}

    config: dict[str, Any] = Field(
        description="W&B sweep syntax shared by every family: method, metric, early_terminate."
    )
    spaces: dict[Family, dict[str, SpaceParam]] = Field(
        min_length=1, description="Each family's search space, in W&B parameter syntax."
    )
    resource_step: int = Field(
        ge=1, description="Boosting rounds (trees) between a trial's reports to Hyperband."
    )

    @model_validator(mode="after")
    def _declarations(self) -> SearchParams:
        if "parameters" in self.config:
            raise invalid("config.parameters", "goes in sweep.spaces.<family>, not in config")
        for family, space in self.spaces.items():
            if not space:
                raise invalid(f"spaces.{family}", "must declare at least one parameter")
            parameters = {name: p.model_dump() for name, p in space.items()}
            try:
                parse_sweep_config({**self.config, "parameters": parameters})
            except SweepConfigError as exc:
                where = exc.where
                if where == "parameters" or where.startswith("parameters."):
                    key = f"spaces.{family}" + where.removeprefix("parameters")
                else:
                    key = "config" if where in ("", "top level") else f"config.{where}"
                raise invalid(key, exc.problem) from None
        return self


def _upper(p: SpaceParam) -> Number | None:
    """The largest value a parameter can take, when it is bounded by the declaration."""
    if p.max is not None:
        return p.max
    if p.values:
        numbers = [v for v in p.values if isinstance(v, int | float) and not isinstance(v, bool)]
        return max(numbers) if numbers else None
    return p.value if isinstance(p.value, int | float) else None


class SweepParams(SearchParams):
    model_config = SearchParams.model_config | {"extra": "forbid"}

    seed: int = Field(
        ge=0, le=SEED_MAX, description="Fold and model seed; must differ from select.seed."
    )
    engine: Engine = Field(description="optuna: embedded, offline; wandb: W&B's sweep service.")
    n_trials: int = Field(ge=1, le=100_000)
    cv_folds: int = Field(ge=2, le=20)
    wandb_project: str = Field(min_length=1)
    storage: str = Field(
        default="", description='"" in memory; a journal file path; or postgresql+psycopg://...'
    )
    workers: int = Field(default=1, ge=0, le=64, description="Local worker processes.")
    timeout_s: float = Field(default=14400, gt=0)
    heartbeat_s: float = Field(default=10, gt=0)
    grace_s: float = Field(default=60, gt=0)
    max_retry: int = Field(default=3, ge=0)
    bagging: BaggingParams

    @model_validator(mode="after")
    def _consistent(self) -> SweepParams:
        sizes = self.bagging.sizes
        if any(n < 1 for n in sizes) or 1 not in sizes or len(set(sizes)) < len(sizes):
            raise invalid(
                "bagging.sizes", f"must be distinct integers >= 1 including 1, got {sizes}"
            )
        rounds = self.spaces.get("lightgbm", {}).get("n_estimators")
        upper = _upper(rounds) if rounds is not None else None
        if upper is not None and upper > self.bagging.max_rounds:
            raise invalid(
                "bagging.max_rounds",
                f"must be >= the largest spaces.lightgbm.n_estimators ({upper}), got "
                f"{self.bagging.max_rounds}: one booster would exceed the serving budget",
            )
        if self.engine != "optuna" and (self.storage.strip() or self.workers != 1):
            raise invalid("engine", "storage and workers apply to engine optuna only")
        if self.workers == 0 and not self.storage.strip():
            raise invalid("workers", "0 (workers run elsewhere) needs a shared sweep.storage")
        if self.grace_s <= self.heartbeat_s:
            raise invalid(
                "grace_s", f"must exceed heartbeat_s ({self.heartbeat_s}), got {self.grace_s}"
            )
        return self
