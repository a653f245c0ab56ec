"""The serving bundle: the fitted model as plain data, priced with numpy and LightGBM only.

Public API (loaded lazily, so that training code importing :mod:`housing.serving.neighbors`
or :mod:`housing.serving.transforms` does not load the LightGBM library):
``load_serving``, ``ServingModel``, ``BundleError`` (see :mod:`housing.serving.loader`),
the format in docs/serving-bundle.md, the exporter in :mod:`housing.serving.export`.
"""

from __future__ import annotations

from typing import Any

_LOADER_NAMES = {
    "BundleError",
    "ServingModel",
    "load_serving",
    "read_verified",
    "FORMAT",
    "FORMAT_VERSION",
    "SERVING_DIR",
    "MANIFEST",
    "CONFIG",
    "BOOSTER",
    "CONTRACT",
    "META_FILE",
    "normalize_category",
}

__all__ = sorted(_LOADER_NAMES)


def __getattr__(name: str) -> Any:
    if name in _LOADER_NAMES:
        from housing.serving import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'housing.serving' has no attribute {name!r}")
