"""The champion's side of the gate: its predictions on the candidate's test rows.

The registry downloads the champion version's ``bundle/`` artifacts and hands the directory
to a scorer the caller supplies (the register stage loads the plain-data serving bundle with
``housing.serving.load_serving(dir / "serving").predict(...)``), so this package depends on
no model format. Any failure becomes ``ChampionEvidence.error``: the gate then fails closed.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from housing.registry.gates import DATA_TAG, FINGERPRINT_TAG, ChampionEvidence
from housing.registry.lookup import download_bundle, get_alias
from housing.registry.records import CHAMPION, MODEL_NAME
from housing.registry.tracking import (
    check_reachable,
    make_client,
    one_line,
    resolve_tracking_uri,
    translated,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

logger = logging.getLogger(__name__)

ChampionScorer = Callable[[Path, Mapping[str, str]], np.ndarray]
"""(downloaded ``bundle/`` directory, the version's tags) -> predictions on the test rows."""


def score_version(
    client: MlflowClient, mv: ModelVersion, scorer: ChampionScorer | None
) -> ChampionEvidence:
    """Download ``mv``'s bundle into a temp dir and score it; errors become evidence."""
    tags = dict(mv.tags or {})
    version = str(mv.version)
    fingerprint, data_md5 = tags.get(FINGERPRINT_TAG), tags.get(DATA_TAG)
    if scorer is None:
        return ChampionEvidence(version, None, fingerprint, data_md5, "no champion scorer given")
    with tempfile.TemporaryDirectory(prefix="housing-champion-") as tmp:
        try:
            local = download_bundle(client, mv, Path(tmp))
            predictions = np.asarray(scorer(local, tags), dtype=float)
        except Exception as exc:  # fail closed on any failure, with its first line as reason
            logger.warning("champion v%s could not be scored: %s", version, one_line(exc))
            return ChampionEvidence(version, None, fingerprint, data_md5, one_line(exc))
    return ChampionEvidence(version, predictions, fingerprint, data_md5)


def champion_predictions(
    scorer: ChampionScorer,
    model_name: str = MODEL_NAME,
    tracking_uri: str | None = None,
) -> ChampionEvidence | None:
    """The current champion's evidence (None when there is no champion), for callers that
    gate outside :func:`housing.registry.log_and_register`."""
    uri = resolve_tracking_uri(tracking_uri)
    check_reachable(uri, must_exist=True)
    with translated(f"scoring {model_name}@{CHAMPION} at {uri}"):
        client = make_client(uri)
        mv = get_alias(client, model_name, CHAMPION)
        return None if mv is None else score_version(client, mv, scorer)
