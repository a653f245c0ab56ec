"""Export a fitted model (``housing.model.build_model``) to a serving bundle directory.

Used by the register stage and the test fixtures alike. Reads the fitted steps of the
scikit-learn pipeline and writes their state as plain data (format: docs/serving-bundle.md):
deterministic bytes, so the same model gives the same md5 in dvc.lock.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from housing.intervals import Interval
from housing.io import replace_dir
from housing.serving import BOOSTER, CONFIG, CONTRACT, MANIFEST, REFERENCE
from housing.serving.loader import FORMAT, FORMAT_VERSION, INTERVAL, N_NUMERIC, sha256_hex


class ExportError(ValueError):
    """The model holds something the serving bundle cannot represent exactly."""


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _imputer_state(imputer: Any, n_columns: int) -> tuple[dict[str, Any], dict[str, bytes]]:
    kind = type(imputer).__name__
    if kind == "SimpleImputer":
        if imputer.strategy not in ("median", "mean"):
            raise ExportError(f"SimpleImputer strategy {imputer.strategy!r} is not exported")
        stats = np.asarray(imputer.statistics_, dtype=np.float64)
        if stats.shape != (n_columns,) or not np.isfinite(stats).all():
            raise ExportError("SimpleImputer dropped or could not fill a column")
        return {"kind": "fill", "strategy": imputer.strategy}, {"imputer_fill.npy": _npy(stats)}
    if kind == "KNNImputer":
        if imputer.weights != "uniform" or imputer.metric != "nan_euclidean":
            raise ExportError("only KNNImputer(weights='uniform', metric='nan_euclidean')")
        if not np.all(imputer._valid_mask) or imputer.add_indicator:
            raise ExportError("KNNImputer with an empty column or an indicator is not exported")
        fit_X = np.asarray(imputer._fit_X, dtype=np.float64)
        config = {"kind": "knn", "n_neighbors": int(imputer.n_neighbors)}
        return config, {"imputer_fit_x.npy": _npy(fit_X)}
    if kind == "IterativeImputer":
        if imputer.sample_posterior or imputer.add_indicator or imputer._is_empty_feature.any():
            raise ExportError(
                "IterativeImputer with sample_posterior, an indicator or an empty column"
            )
        feats, nbrs, coefs, intercepts = [], [], [], []
        for triplet in imputer.imputation_sequence_:
            est = triplet.estimator
            if type(est).__name__ != "BayesianRidge" or np.ndim(est.coef_) != 1:
                raise ExportError(f"IterativeImputer estimator {type(est).__name__} is not linear")
            feats.append(int(triplet.feat_idx))
            nbrs.append(np.asarray(triplet.neighbor_feat_idx, dtype=np.int64))
            coefs.append(np.asarray(est.coef_, dtype=np.float64))
            intercepts.append(float(est.intercept_))
        if len({len(n) for n in nbrs}) > 1:
            raise ExportError("IterativeImputer steps use different numbers of features")
        init = np.asarray(imputer.initial_imputer_.statistics_, dtype=np.float64)
        lo = np.broadcast_to(np.asarray(imputer._min_value, dtype=np.float64), (n_columns,))
        hi = np.broadcast_to(np.asarray(imputer._max_value, dtype=np.float64), (n_columns,))
        blobs = {
            "imputer_fill.npy": _npy(init),
            "iterative_features.npy": _npy(np.asarray(feats, dtype=np.int64)),
            "iterative_neighbors.npy": _npy(np.asarray(nbrs, dtype=np.int64)),
            "iterative_coef.npy": _npy(np.asarray(coefs, dtype=np.float64)),
            "iterative_intercept.npy": _npy(np.asarray(intercepts, dtype=np.float64)),
            "iterative_min.npy": _npy(lo),
            "iterative_max.npy": _npy(hi),
        }
        config = {
            "kind": "iterative",
            "initial_strategy": imputer.initial_strategy,
            "n_iter": int(imputer.n_iter_),
            "steps": len(feats),
        }
        return config, blobs
    raise ExportError(f"imputer {kind} is not exported to the serving bundle")


_TREE_HEADER = re.compile(r"^Tree=\d+\n", re.MULTILINE)


def _scale_values(block: str, key: str, factor: float) -> str:
    def scaled(match: re.Match[str]) -> str:
        return f"{key}=" + " ".join(repr(float(v) * factor) for v in match.group(1).split()) + "\n"

    out, n = re.subn(rf"^{key}=(.*)\n", scaled, block, count=1, flags=re.MULTILINE)
    if n != 1:
        raise ExportError(f"a LightGBM tree without {key}")
    return out


def averaged_booster_text(texts: Sequence[str]) -> str:
    """One LightGBM model text whose raw score is the mean of the ``texts``' raw scores.

    Every member's leaf values (and internal values, which only feature contributions read)
    are divided by the number of members and the trees are concatenated: the sum over every
    tree is then the members' mean, to rounding (~1e-15). The members must share their
    features (one training matrix). LightGBM parses the result and writes it back, so the
    header's tree sizes are its own.
    """
    from lightgbm import Booster

    if not texts:
        raise ExportError("no booster to average")
    if len(texts) == 1:
        return texts[0]
    factor = 1.0 / len(texts)
    header: str | None = None
    trees: list[str] = []
    tail = ""
    for text in texts:
        head, found, rest = text.partition("\nTree=0\n")
        body, end, after = ("Tree=0\n" + rest).partition("end of trees\n")
        if not found or not end:
            raise ExportError("not a LightGBM model text")
        head = re.sub(r"^tree_sizes=.*\n", "", head + "\n", flags=re.MULTILINE)
        if header is None:
            header, tail = head, end + after
        elif head != header:
            raise ExportError("the boosters to average were trained on different features")
        for block in _TREE_HEADER.split(body)[1:]:
            block = _scale_values(block, "leaf_value", factor)
            trees.append(_scale_values(block, "internal_value", factor))
    merged = header + "\n".join(f"Tree={i}\n{b}" for i, b in enumerate(trees)) + tail
    return Booster(model_str=merged).model_to_string()


def _boosters(regressor: Any) -> list[Any]:
    """The fitted LightGBM regressors a regressor step averages: itself, or a bag of them."""
    name = type(regressor).__name__
    if name == "VotingRegressor":
        if regressor.weights is not None:
            raise ExportError("a weighted VotingRegressor is not exported (equal weights only)")
        members = list(regressor.estimators_)
    else:
        members = [regressor]
    for member in members:
        if type(member).__name__ != "LGBMRegressor":
            raise ExportError(
                "the serving bundle holds LightGBM models only, not "
                f"{type(member).__name__}: choose the lightgbm family or serve the skops "
                "model another way"
            )
        if member.objective_ != "regression":
            raise ExportError(f"LightGBM objective {member.objective_!r} is not an identity link")
    return members


def _json_bytes(data: Mapping[str, Any]) -> bytes:
    return (json.dumps(dict(data), indent=2, sort_keys=True, allow_nan=False) + "\n").encode()


def serving_files(
    model: Any,
    contract: Mapping[str, Any],
    interval: Interval,
    reference: Mapping[str, Any] | None = None,
) -> dict[str, bytes]:
    """Every file of the serving bundle (manifest included) for a fitted model.

    ``contract`` is the data contract as a dict (``Contract.to_dict()``): it is written as
    the hashed ``contract.json``, from which the API builds its request validator.
    ``interval`` (``housing.intervals.calibrate`` on the model's out-of-fold predictions)
    is written as the hashed ``interval.json``, from which the API answers each price's
    prediction interval.
    """
    if not isinstance(contract, Mapping) or "features" not in contract:
        raise ExportError("write the data contract (Contract.to_dict()) into the bundle")
    if not isinstance(interval, Interval):
        raise ExportError(
            "write the prediction interval (housing.intervals.calibrate) into the bundle"
        )
    if (
        getattr(model, "inverse_func", None) is not np.exp
        or getattr(model, "func", None) is not np.log
    ):
        raise ExportError("only a log-target model (inverse link exp) is exported")
    steps = dict(model.regressor_.steps)
    encoder, imputer, geo, neighbors = (steps[s] for s in ("encode", "impute", "geo", "neighbors"))
    members = _boosters(steps["regressor"])
    categories = [str(c) for c in encoder.categories_]
    n_columns = N_NUMERIC + len(categories)
    imputer_config, blobs = _imputer_state(imputer, n_columns)
    centers = np.asarray(geo.cluster_centers_, dtype=np.float64)
    if len(centers):
        blobs["cluster_centers.npy"] = _npy(centers)
    k = int(neighbors.n_neighbors)
    scales = [int(s) for s in neighbors.scales] if k else []
    if k:
        blobs["neighbor_coords.npy"] = _npy(np.asarray(neighbors.train_coords_, dtype=np.float64))
        blobs["neighbor_target.npy"] = _npy(np.asarray(neighbors.train_target_, dtype=np.float64))
    text = averaged_booster_text([m.booster_.model_to_string() for m in members])
    n_features = (
        n_columns
        + (3 if geo.ratios else 0)
        + len(centers)
        + len(geo.rotations)
        + (1 + len(scales) if k else 0)
    )
    booster = members[0].booster_
    if booster.num_feature() != n_features:
        raise ExportError(f"booster has {booster.num_feature()} features, expected {n_features}")
    blobs[BOOSTER] = text.encode("utf-8")
    num_trees = sum(int(m.booster_.num_trees()) for m in members)
    config = {
        "format_version": FORMAT_VERSION,
        "categories": categories,
        "imputer": imputer_config,
        "geo": {
            "ratios": bool(geo.ratios),
            "n_clusters": len(centers),
            "gamma": float(geo.gamma),
            "rotations": [float(a) for a in geo.rotations],
        },
        "neighbors": {"k": k, "scales": scales, "rule": "distance, then training-row index"},
        "n_features": n_features,
        "feature_names": [str(n) for n in model.regressor_[:-1].get_feature_names_out()],
        "booster": {
            "family": "lightgbm",
            "num_trees": num_trees,
            "members": len(members),
            "output": "raw",
        },
        "link": "exp",
    }
    blobs[CONFIG] = _json_bytes(config)
    blobs[CONTRACT] = _json_bytes(contract)
    blobs[INTERVAL] = _json_bytes(interval.to_dict())
    if reference is not None:  # the training data's summaries, for drift (housing.monitor)
        blobs[REFERENCE] = _json_bytes(reference)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "files": {
            name: {"sha256": sha256_hex(data), "bytes": len(data)}
            for name, data in sorted(blobs.items())
        },
    }
    blobs[MANIFEST] = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    return blobs


def write_serving(
    directory: str | os.PathLike[str],
    model: Any,
    *,
    contract: Mapping[str, Any],
    interval: Interval,
    reference: Mapping[str, Any] | None = None,
) -> str:
    """Write the serving bundle of ``model``, its ``contract``, its prediction ``interval``
    and, when given, the training data's ``reference`` summaries to ``directory`` (replaced
    atomically).

    Returns the bundle's sha256 (that of manifest.json, which lists every file's sha256).
    """
    directory = Path(directory)
    blobs = serving_files(model, contract, interval, reference)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        for name, data in blobs.items():
            (tmp / name).write_bytes(data)
            (tmp / name).chmod(0o644)
        tmp.chmod(0o755)
        replace_dir(tmp, directory)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return sha256_hex(blobs[MANIFEST])
