"""The serving bundle: the fitted model as plain data, priced with numpy and LightGBM only.

Public API (loaded lazily, so that training code importing :mod:`housing.serving.neighbors`
or :mod:`housing.serving.transforms` does not load the LightGBM library):
``load_serving``, ``ServingModel``, ``BundleError`` (see :mod:`housing.serving.loader`),
the format in docs/serving-bundle.md, the exporter in :mod:`housing.serving.export`.
"""

from __future__ import annotations

from typing import Any

# The bundle directory's layout, in one light module: the pipeline (housing.artifact, the
# register stage) and the API's sources (serve/sources/*) import these names from here,
# which loads neither LightGBM nor PyYAML.
MODEL_FILE = "model.skops"  # the fitted scikit-learn pipeline (skops), the source of truth
META_FILE = "model.json"  # metadata; its serving_sha256 names the serving bundle
SERVING_DIR = "serving"  # the serving bundle (docs/serving-bundle.md)
MANIFEST = "manifest.json"  # serving/manifest.json: every serving file's sha256
CONFIG = "config.json"
BOOSTER = "booster.txt"
CONTRACT = "contract.json"  # the data contract the API validates requests against
REFERENCE = "reference.json"  # the training data's summaries for drift (housing.monitor)

_LOADER_NAMES = {
    "BundleError",
    "ServingModel",
    "load_serving",
    "read_verified",
    "FORMAT",
    "FORMAT_VERSION",
    "normalize_category",
}

__all__ = sorted(
    _LOADER_NAMES
    | {
        "MODEL_FILE",
        "META_FILE",
        "SERVING_DIR",
        "MANIFEST",
        "CONFIG",
        "BOOSTER",
        "CONTRACT",
        "REFERENCE",
    }
)


def __getattr__(name: str) -> Any:
    if name in _LOADER_NAMES:
        from housing.serving import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'housing.serving' has no attribute {name!r}")
