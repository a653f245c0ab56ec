"""Tiny, in-memory district frames for the stage-core unit tests (Kedro-style)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

CATEGORIES = ("<1H OCEAN", "INLAND", "NEAR BAY", "NEAR OCEAN", "ISLAND")


def districts(n: int, *, seed: int = 0, missing: int = 0) -> pd.DataFrame:
    """``n`` plausible districts in the raw layout; the first ``missing`` lack total_bedrooms."""
    rng = np.random.default_rng(seed)
    rooms = rng.uniform(500, 5000, n).round()
    households = (rooms / rng.uniform(4, 6, n)).round()
    income = rng.uniform(0.6, 14.0, n).round(4)
    frame = pd.DataFrame(
        {
            "longitude": rng.uniform(-124.0, -114.5, n).round(2),
            "latitude": rng.uniform(32.6, 41.9, n).round(2),
            "housing_median_age": rng.integers(1, 53, n).astype(float),
            "total_rooms": rooms,
            "total_bedrooms": (rooms * rng.uniform(0.15, 0.25, n)).round(),
            "population": (households * rng.uniform(2, 4, n)).round(),
            "households": households,
            "median_income": income,
            "median_house_value": (40_000 * income + rng.normal(0, 20_000, n))
            .clip(15_000, 500_001)
            .round(),
            "ocean_proximity": [CATEGORIES[i % 4] for i in range(n)],
        }
    )
    if missing:
        frame.loc[: missing - 1, "total_bedrooms"] = np.nan
    return frame


@pytest.fixture
def make_districts() -> Callable[..., pd.DataFrame]:
    return districts
