"""``featurize``: the candidate feature groups, each kept only if CV on train says so."""

from __future__ import annotations

from pydantic import Field, model_validator

from housing.params.base import SEED_MAX, Section, invalid, ordered


class FeaturizeParams(Section):
    cv_folds: int = Field(ge=2, le=20)
    seed: int = Field(ge=0, le=SEED_MAX)
    gamma: float = Field(gt=0, description="RBF width of the cluster-similarity features.")
    k_values: list[int] = Field(
        min_length=1, description="KMeans cluster counts to try, fewest first (0 = none)."
    )
    k_start: int = Field(ge=0, description="K used while the groups are chosen: one of k_values.")
    rotations: list[float] = Field(
        description="Rotated coordinate axes, degrees strictly between 0 and 90 (0 and 90 "
        "are the raw axes)."
    )
    neighbor_values: list[int] = Field(
        min_length=1, description="Nearest-district counts to try, fewest first."
    )
    neighbor_scales: list[int] = Field(description="Wider neighbourhoods added as one group.")
    neighbor_folds: int = Field(ge=2, le=20)

    @model_validator(mode="after")
    def _consistent(self) -> FeaturizeParams:
        if any(k < 0 for k in self.k_values):
            raise invalid("k_values", f"must be >= 0, got {self.k_values}")
        ordered(self.k_values, "k_values")
        if self.k_start not in self.k_values:
            raise invalid("k_start", f"must be one of k_values {self.k_values}, got {self.k_start}")
        if any(not 0 < a < 90 for a in self.rotations):
            raise invalid("rotations", f"must lie strictly between 0 and 90, got {self.rotations}")
        if any(n < 1 for n in self.neighbor_values):
            raise invalid("neighbor_values", f"must be >= 1, got {self.neighbor_values}")
        ordered(self.neighbor_values, "neighbor_values")
        if any(n < 1 for n in self.neighbor_scales):
            raise invalid("neighbor_scales", f"must be >= 1, got {self.neighbor_scales}")
        ordered(self.neighbor_scales, "neighbor_scales")
        return self
