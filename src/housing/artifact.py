"""The model bundle: a skops file of the fitted model plus a JSON metadata file.

skops loads only the types listed in :data:`TRUSTED_TYPES` (no pickle, no arbitrary code),
and every load first checks the file's sha256 against the value recorded at save time (or
given by the registry). skops writes memory addresses and timestamps into its zip; we
rewrite them canonically so the same model always has the same bytes and md5 in dvc.lock.
"""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from housing.io import read_json, sha256_bytes, write_bytes, write_json
from housing.serving import META_FILE, MODEL_FILE, SERVING_DIR

logger = logging.getLogger(__name__)


# Reviewed: the non-default types a model of any family in housing.model contains (a test
# keeps this list complete). Each is data-only state (arrays, LightGBM's model text, tree
# node arrays); none runs code on load. NeighborPrice keeps no KD-tree: it stores the
# training coordinates and targets and rebuilds its KD-tree (a cache) after loading.
TRUSTED_TYPES: tuple[str, ...] = (
    "collections.OrderedDict",
    "housing.features.GeoFeatures",
    "housing.features.NeighborPrice",
    "housing.features.RawEncoder",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMRegressor",
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.impute._iterative.IterativeImputer",
    "sklearn.impute._iterative._ImputerTriplet",
    "sklearn.tree._tree.Tree",
    # A seed bag's VotingRegressor keeps its fitted members in a Bunch (a dict subclass).
    "sklearn.utils._bunch.Bunch",
)

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_ID_PATTERN = re.compile(r'("__id__": )(\d+)|"(\d+)\.npy"')


class ArtifactError(RuntimeError):
    """The bundle is missing, tampered with, or holds a type we do not trust."""


def canonical_skops(data: bytes) -> bytes:
    """Rewrite a skops zip so identical models give identical bytes.

    skops names array files and memo entries by ``id()`` and stamps entries with the
    current time; we renumber ids in order of first appearance and zero the timestamps.
    """
    src = zipfile.ZipFile(io.BytesIO(data))
    schema = src.read("schema.json").decode("utf-8")
    mapping: dict[str, str] = {}

    def renumber(match: re.Match[str]) -> str:
        raw = match.group(2) or match.group(3)
        new = mapping.setdefault(raw, str(len(mapping) + 1))
        return f"{match.group(1)}{new}" if match.group(1) else f'"{new}.npy"'

    schema = _ID_PATTERN.sub(renumber, schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        entries = [("schema.json", schema.encode("utf-8"))]
        for info in src.infolist():
            if info.filename == "schema.json":
                continue
            stem = info.filename.removesuffix(".npy")
            new_name = f"{mapping.get(stem, stem)}.npy"
            entries.append((new_name, src.read(info.filename)))
        for name, payload in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            dst.writestr(info, payload)
    return out.getvalue()


def dumps_model(model: Any) -> bytes:
    """Serialise a fitted model to canonical skops bytes."""
    import skops.io as sio

    return canonical_skops(sio.dumps(model))


def loads_model(data: bytes, *, expected_sha256: str) -> Any:
    """Verify ``data`` against ``expected_sha256``, then load it trusting only reviewed types."""
    import skops.io as sio

    actual = sha256_bytes(data)
    if actual != expected_sha256:
        raise ArtifactError(
            f"model sha256 mismatch: expected {expected_sha256[:12]}…, got {actual[:12]}…; "
            "refusing to load a tampered or mismatched artifact"
        )
    untrusted = sorted(set(sio.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
    if untrusted:
        raise ArtifactError(f"model contains untrusted types: {', '.join(untrusted)}")
    return sio.loads(data, trusted=list(TRUSTED_TYPES))


@dataclass(frozen=True)
class Bundle:
    """A loaded model and its metadata (spec, metrics, contract, sha256)."""

    model: Any
    meta: dict[str, Any]

    @property
    def sha256(self) -> str:
        return str(self.meta["sha256"])


def save_bundle(directory: str | Path, model: Any, meta: dict[str, Any]) -> str:
    """Write ``model.skops`` and ``model.json`` (with the sha256) atomically; return the sha256."""
    directory = Path(directory)
    data = dumps_model(model)
    digest = sha256_bytes(data)
    write_bytes(directory / MODEL_FILE, data)
    write_json(directory / META_FILE, {**meta, "sha256": digest})
    return digest


def load_bundle(directory: str | Path, *, expected_sha256: str | None = None) -> Bundle:
    """Load a bundle directory, verifying the model against ``expected_sha256`` or its metadata."""
    directory = Path(directory)
    model_path, meta_path = directory / MODEL_FILE, directory / META_FILE
    for path in (model_path, meta_path):
        if not path.is_file():
            raise ArtifactError(f"model bundle incomplete: {path} not found")
    try:
        meta = read_json(meta_path)
    except (OSError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"unreadable model metadata {meta_path}: {exc}") from exc
    expected = expected_sha256 or meta.get("sha256")
    if not expected:
        raise ArtifactError(f"{meta_path} records no sha256; refusing to load")
    model = loads_model(model_path.read_bytes(), expected_sha256=expected)
    logger.info("loaded model bundle %s (sha256 %s)", directory, expected[:12])
    return Bundle(model, meta)


@contextmanager
def bundle_only(directory: str | Path) -> Iterator[Path]:
    """A temporary copy of the bundle in ``directory``: model, metadata and the serving
    export (if any), nothing else. ``models/`` also holds other outputs
    (``best_params.yaml``), and what is logged to the registry must be exactly what the
    champion's signature covers."""
    directory = Path(directory)
    with tempfile.TemporaryDirectory(prefix="housing-bundle-") as tmp:
        for name in (MODEL_FILE, META_FILE):
            shutil.copy2(directory / name, Path(tmp) / name)
        if (directory / SERVING_DIR).is_dir():
            shutil.copytree(directory / SERVING_DIR, Path(tmp) / SERVING_DIR)
        yield Path(tmp)
