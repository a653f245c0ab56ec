"""Read the choices upstream stages made (imputer, features, family) from their reports.

Stages downstream of a choice rebuild the same unfitted preprocessing from these files, so
the choice is made once, by cross-validation, and recorded where DVC tracks it.
"""

from __future__ import annotations

from pathlib import Path

from housing.io import read_json
from housing.model import FeatureConfig

IMPUTATION_REPORT = Path("reports/preprocess/imputation.json")
FEATURES_REPORT = Path("reports/featurize/features.json")
LEADERBOARD = Path("reports/select/leaderboard.json")


def imputer(path: Path = IMPUTATION_REPORT) -> str:
    """The imputer strategy the preprocess stage chose."""
    return str(read_json(path)["chosen"])


def features(path: Path = FEATURES_REPORT) -> FeatureConfig:
    """The feature configuration the featurize stage kept."""
    return FeatureConfig.from_dict(read_json(path)["config"])


def family(path: Path = LEADERBOARD) -> str:
    """The model family the select stage chose."""
    return str(read_json(path)["chosen"])
