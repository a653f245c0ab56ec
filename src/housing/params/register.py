"""``register``: the final model's honest CV, its interval, and the promotion gates."""

from __future__ import annotations

import math

from pydantic import Field, field_validator

from housing.params.base import SEED_MAX, Section


class GatesParams(Section):
    min_r2: float = Field(le=1, description="Floor on the candidate's test R².")
    max_rmse: float = Field(gt=0, description="Ceiling on the candidate's test RMSE, USD.")
    max_delta_rmse: float = Field(
        ge=0,
        description="Largest tolerated upper 95% bound of candidate - champion RMSE, USD.",
    )

    @field_validator("min_r2", "max_rmse", "max_delta_rmse")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number, got {value}")
        return value


class RegisterParams(Section):
    model_name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="Registered model name in MLflow."
    )
    experiment: str = Field(min_length=1, description="MLflow experiment of the runs.")
    bootstrap_resamples: int = Field(
        ge=100,
        le=100_000,
        description="Paired bootstrap of the gate (fewer than 100 cannot place a 95% bound).",
    )
    seed: int = Field(ge=0, le=SEED_MAX)
    cv_folds: int = Field(ge=2, le=20)
    cv_seed: int = Field(
        ge=0, le=SEED_MAX, description="Must differ from every seed a choice was made with."
    )
    interval_level: float = Field(gt=0, lt=1, description="0.9 = a 90% prediction interval.")
    gates: GatesParams
