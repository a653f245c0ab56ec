"""Load a serving bundle: the fitted model as plain data, priced with numpy and LightGBM only.

The register stage exports the fitted skops model (the source of truth) to
``models/serving/`` (see :mod:`housing.serving.export` and docs/serving-bundle.md): the
booster as LightGBM model text and the fitted preprocessing state as ``.npy`` arrays and
one ``config.json``, the data contract and the conformal prediction interval
(``interval.json``), listed with their sha256 in ``manifest.json``. :func:`load_serving`
verifies every byte before parsing any of it and returns a :class:`ServingModel` whose
prices equal the pipeline's ``model.predict`` (a test proves it on the real test split).

A promoted champion may also carry the booster compiled to a shared library
(``compiled/``, :mod:`housing.serving.compiled`): it scores instead of LightGBM when the
promotion record lists it, it was built for this platform from this very ``booster.txt``
and it agrees with LightGBM on probe rows here; otherwise LightGBM's model text scores.

Imports numpy, scipy.spatial and LightGBM's C library (ctypes) only: never scikit-learn,
pandas, skops, mlflow or the ``lightgbm`` Python package.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from housing.contract import normalize_category
from housing.intervals import Interval
from housing.serving import (
    BOOSTER,
    CONFIG,
    CONTRACT,
    MANIFEST,
    META_FILE,
    REFERENCE,
    SERVING_DIR,
    transforms,
)
from housing.serving.compiled import CompiledPredictor, load_compiled
from housing.serving.lgbm import Booster, LightGBMError
from housing.serving.neighbors import build_tree, mean_targets

logger = logging.getLogger(__name__)

FORMAT = "housing-serving"
# The conformal prediction interval (docs/intervals.md). Named here, not in the package's
# light __init__ (which every training stage depends on), so adding it re-runs register only.
INTERVAL = "interval.json"
# 2: the data contract (request bounds) is a hashed bundle file; 3: so is the interval
FORMAT_VERSION = 3
_REQUIRED = (CONFIG, BOOSTER, CONTRACT, INTERVAL)
_NAME = re.compile(r"^[a-z0-9_]+\.(npy|json|txt)$")
N_NUMERIC = 8


class BundleError(RuntimeError):
    """The serving bundle is missing, tampered with, or not of a format we read."""


class FormatVersionError(BundleError):
    """The bundle's manifest (hash verified) is of another format version: a caller holding
    the version's skops model (the registry's champion scorer) may fall back to it."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"serving bundle incomplete: {path} not found") from None
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc}") from exc


def read_verified(
    serving_dir: Path, expected_sha256: str
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Read the manifest and every file it lists, checking each sha256 before parsing."""
    manifest_path = serving_dir / MANIFEST
    raw = _read(manifest_path)
    actual = sha256_hex(raw)
    if actual != expected_sha256:
        raise BundleError(
            f"{manifest_path} sha256 mismatch: expected {expected_sha256[:12]}…, "
            f"got {actual[:12]}…; refusing a tampered or mismatched serving bundle"
        )
    try:
        manifest = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{manifest_path} is not JSON: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{manifest_path} is not a {FORMAT} manifest")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise FormatVersionError(
            f"{manifest_path} has format version {manifest.get('format_version')!r}; "
            f"this code reads version {FORMAT_VERSION} only: re-export the bundle "
            "(dvc repro register) with this code"
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or any(n not in files for n in _REQUIRED):
        raise BundleError(f"{manifest_path} lists no {', '.join(_REQUIRED)} (all required)")
    blobs: dict[str, bytes] = {}
    for name, entry in sorted(files.items()):
        if not isinstance(name, str) or not _NAME.match(name) or not isinstance(entry, dict):
            raise BundleError(f"{manifest_path} lists an invalid file entry {name!r}")
        data = _read(serving_dir / name)
        if sha256_hex(data) != entry.get("sha256") or len(data) != entry.get("bytes"):
            raise BundleError(
                f"serving file {serving_dir / name}: sha256 mismatch with the manifest; "
                "refusing a tampered serving bundle"
            )
        blobs[name] = data
    return manifest, blobs


def _array(blobs: dict[str, bytes], name: str) -> np.ndarray:
    if name not in blobs:
        raise BundleError(f"serving bundle lists no {name}")
    try:
        return np.load(io.BytesIO(blobs[name]), allow_pickle=False)
    except ValueError as exc:
        raise BundleError(f"serving file {name} is not a plain .npy array: {exc}") from exc


@dataclass(frozen=True)
class _Imputer:
    kind: str  # "none", "fill", "knn", "iterative"
    fill: np.ndarray | None = None
    fit_x: np.ndarray | None = None
    n_neighbors: int = 0
    sequence: tuple[tuple[int, np.ndarray, np.ndarray, float], ...] = ()
    min_value: np.ndarray | None = None
    max_value: np.ndarray | None = None

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if not np.isnan(X).any():
            return X
        if self.kind == "fill":
            return np.where(np.isnan(X), self.fill[None, :], X)
        if self.kind == "knn":
            return transforms.knn_impute(X, self.fit_x, self.n_neighbors)
        if self.kind == "iterative":
            return transforms.iterative_impute(
                X,
                initial_fill=self.fill,
                sequence=self.sequence,
                min_value=self.min_value,
                max_value=self.max_value,
            )
        raise ValueError("missing values but the model has no imputer")


def _imputer(config: dict[str, Any], blobs: dict[str, bytes]) -> _Imputer:
    kind = config.get("kind")
    if kind == "fill":
        return _Imputer("fill", fill=_array(blobs, "imputer_fill.npy"))
    if kind == "knn":
        return _Imputer(
            "knn", fit_x=_array(blobs, "imputer_fit_x.npy"), n_neighbors=int(config["n_neighbors"])
        )
    if kind == "iterative":
        feats = _array(blobs, "iterative_features.npy")
        nbrs = _array(blobs, "iterative_neighbors.npy")
        coefs = _array(blobs, "iterative_coef.npy")
        intercepts = _array(blobs, "iterative_intercept.npy")
        sequence = tuple(
            (int(f), np.ascontiguousarray(n, dtype=np.intp), np.ascontiguousarray(c), float(b))
            for f, n, c, b in zip(feats, nbrs, coefs, intercepts, strict=True)
        )
        return _Imputer(
            "iterative",
            fill=_array(blobs, "imputer_fill.npy"),
            sequence=sequence,
            min_value=_array(blobs, "iterative_min.npy"),
            max_value=_array(blobs, "iterative_max.npy"),
        )
    raise BundleError(f"unknown imputer kind {kind!r} in {CONFIG}")


def _interval(blobs: dict[str, bytes]) -> Interval:
    try:
        return Interval.from_dict(json.loads(blobs[INTERVAL]))
    except (KeyError, TypeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise BundleError(f"unusable {INTERVAL} in the serving bundle: {exc}") from exc


def _reference(blobs: dict[str, bytes]) -> dict[str, Any] | None:
    raw = blobs.get(REFERENCE)
    if raw is None:
        return None
    try:
        reference = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"unreadable {REFERENCE} in the serving bundle: {exc}") from exc
    if not isinstance(reference, dict) or not {"numeric", "categorical", "prediction"} <= set(
        reference
    ):
        raise BundleError(f"{REFERENCE} in the serving bundle is not a drift reference")
    return reference


class ServingModel:
    """The fitted model's arithmetic on float matrices: encode, impute, features, booster."""

    def __init__(self, config: dict[str, Any], blobs: dict[str, bytes], meta: dict[str, Any]):
        self.meta = meta
        self.config = config
        try:
            contract = json.loads(blobs[CONTRACT])
        except (KeyError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"unreadable {CONTRACT} in the serving bundle: {exc}") from exc
        if not isinstance(contract, dict):
            raise BundleError(f"{CONTRACT} in the serving bundle is not a JSON object")
        #: the data contract as the bundle's hashed contract.json holds it (the request
        #: validator is built from this verified copy, never from model.json)
        self.contract: dict[str, Any] = contract
        #: the conformal prediction interval (docs/intervals.md), from the hashed
        #: interval.json: prices [ŷ·exp(log_low), ŷ·exp(log_high)] at interval.level
        self.interval: Interval = _interval(blobs)
        #: the training data's summaries a drift check compares traffic with
        #: (housing.monitor.reference), from the hashed reference.json; None in bundles
        #: written before it existed
        self.reference: dict[str, Any] | None = _reference(blobs)
        self.categories: tuple[str, ...] = tuple(str(c) for c in config["categories"])
        self._cat_index = {c: i for i, c in enumerate(self.categories)}
        self._impute = _imputer(config["imputer"], blobs)
        geo = config["geo"]
        self._ratios = bool(geo["ratios"])
        self._gamma = float(geo["gamma"])
        self._angles = tuple(float(a) for a in geo["rotations"])
        self._centers = (
            _array(blobs, "cluster_centers.npy") if geo["n_clusters"] else np.empty((0, 2))
        )
        self._k = int(config["neighbors"]["k"])
        # Further neighbourhood sizes (absent in bundles written before they existed).
        self._ks = (self._k, *(int(k) for k in config["neighbors"].get("scales", ())))
        if self._k:
            self._nb_coords = _array(blobs, "neighbor_coords.npy")
            self._nb_target = _array(blobs, "neighbor_target.npy")
            self._tree = build_tree(self._nb_coords)
        else:
            self._nb_coords = self._nb_target = self._tree = None
        if config.get("link") != "exp":
            raise BundleError(f"unknown inverse link {config.get('link')!r} in {CONFIG}")
        try:
            self._booster = Booster(blobs[BOOSTER].decode("utf-8"))
        except (LightGBMError, UnicodeDecodeError) as exc:
            raise BundleError(f"cannot load {BOOSTER}: {exc}") from exc
        expected = int(config["n_features"])
        if self._booster.n_features != expected:
            raise BundleError(
                f"{BOOSTER} expects {self._booster.n_features} features, {CONFIG} builds {expected}"
            )
        self._compiled: CompiledPredictor | None = None

    def use_compiled(self, predictor: CompiledPredictor | None) -> None:
        """Score with ``predictor`` (checked exact by :func:`load_compiled`) instead of LightGBM."""
        if predictor is not None and predictor.n_features != self._booster.n_features:
            raise BundleError("the compiled predictor expects another number of features")
        self._compiled = predictor

    @property
    def booster(self) -> Booster:
        """LightGBM's booster from the verified model text (the source of truth)."""
        return self._booster

    @property
    def compiled(self) -> CompiledPredictor | None:
        """The champion's compiled predictor when it scores, else None."""
        return self._compiled

    @property
    def scorer(self) -> str:
        """What computes the raw scores: ``compiled`` (the champion's library) or ``lightgbm``."""
        return "lightgbm" if self._compiled is None else "compiled"

    @property
    def sha256(self) -> str:
        return str(self.meta.get("serving_sha256", ""))

    def category_index(self, label: str) -> int:
        """Index of a category label after normalisation; ``KeyError`` if unknown."""
        return self._cat_index[normalize_category(label)]

    def encode(self, numeric: np.ndarray, category_idx: Any) -> np.ndarray:
        """Eight numeric columns then the one-hot category (``RawEncoder``'s matrix)."""
        numeric = np.asarray(numeric, dtype=np.float64).reshape(-1, N_NUMERIC)
        out = np.zeros((numeric.shape[0], N_NUMERIC + len(self.categories)))
        out[:, :N_NUMERIC] = numeric
        out[np.arange(numeric.shape[0]), N_NUMERIC + np.asarray(category_idx, dtype=np.intp)] = 1.0
        return out

    def features(self, numeric: np.ndarray, category_idx: Any) -> np.ndarray:
        """The model matrix: impute, geo features, neighbour price, as the pipeline does."""
        X = self._impute(self.encode(numeric, category_idx))
        X = transforms.geo_features(
            X,
            with_ratios=self._ratios,
            centers=self._centers,
            gamma=self._gamma,
            angles=self._angles,
        )
        if self._k:
            coords = transforms.geo_coords(X)
            X = np.column_stack([X, mean_targets(self._tree, self._nb_target, coords, self._ks)])
        return X

    def predict_raw(self, X: np.ndarray) -> np.ndarray:
        """The booster alone: log prices of model-matrix rows (compiled when loaded; no lock)."""
        compiled = self._compiled
        if compiled is not None:
            return compiled.predict_raw(X)
        return self._booster.predict_raw(X)

    def predict(self, numeric: np.ndarray, category_idx: Any) -> np.ndarray:
        """Prices in USD for rows of the eight numeric fields (NaN = missing bedrooms)."""
        return np.exp(self.predict_raw(self.features(numeric, category_idx)))

    def predict_interval(
        self, numeric: np.ndarray, category_idx: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Prices and the low and high ends of their interval at ``interval.level`` (USD)."""
        prices = self.predict(numeric, category_idx)
        low, high = self.interval.bounds(prices)
        return prices, low, high

    def context(self, limit: int) -> tuple[list[dict[str, float]] | None, int]:
        """Up to ``limit`` training districts (every k-th) with their price; None without kNN."""
        if not self._k or limit <= 0:
            return None, 0
        total = len(self._nb_target)
        step = max(1, math.ceil(total / limit))
        lat = self._nb_coords[::step, 0]
        lon = self._nb_coords[::step, 1] / np.cos(np.deg2rad(lat))
        values = np.exp(self._nb_target[::step])
        points = [
            {
                "latitude": round(float(a), 5),
                "longitude": round(float(o), 5),
                "value": round(float(v), 2),
            }
            for a, o, v in zip(lat, lon, values, strict=True)
            if math.isfinite(a) and math.isfinite(o) and math.isfinite(v)
        ]
        return points[:limit], total


def load_serving(
    directory: Path, *, expected_sha256: str | None = None, signed: bool | None = None
) -> ServingModel:
    """Load the bundle directory (``model.json`` + ``serving/``), verifying every file.

    ``expected_sha256`` (e.g. from the registry) is the sha256 of ``serving/manifest.json``;
    without it, ``model.json``'s ``serving_sha256`` is used. Raises :class:`BundleError`
    with a one-line reason when anything is missing, tampered with or unreadable.

    ``signed`` says whether the caller verified the champion's signature with a trusted key
    (``verify(...).signed``): a compiled predictor in ``compiled/`` is then used; ``None``
    verifies it here with ``HOUSING_VERIFY_KEYS``/``_FILES``; ``False`` never uses one.
    """
    directory = Path(directory)
    meta_path = directory / META_FILE
    try:
        meta = json.loads(_read(meta_path))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"unreadable model metadata {meta_path}: {exc}") from exc
    if not isinstance(meta, dict):
        raise BundleError(f"{meta_path} is not a JSON object")
    expected = expected_sha256 or meta.get("serving_sha256")
    if not expected:
        raise BundleError(f"{meta_path} records no serving_sha256; refusing to load")
    _, blobs = read_verified(directory / SERVING_DIR, str(expected))
    try:
        config = json.loads(blobs[CONFIG])
        model = ServingModel(config, blobs, {**meta, "serving_sha256": expected})
    except BundleError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"malformed serving bundle {directory / SERVING_DIR}: {exc!r}") from exc
    model.use_compiled(load_compiled(directory, blobs[BOOSTER], model.booster, signed=signed))
    logger.info(
        "loaded serving bundle %s (sha256 %s, scored by %s)",
        directory,
        str(expected)[:12],
        model.scorer,
    )
    return model
