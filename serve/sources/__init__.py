"""Where a model can come from: the MLflow registry alias, a GCS object, or a local directory."""

from serve.sources.base import ModelSource, SourceError
from serve.sources.build import build_sources

__all__ = ["ModelSource", "SourceError", "build_sources"]
