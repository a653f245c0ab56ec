"""The MLflow registry alias (models:/<name>@<alias>). MLflow is imported only when used."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

from serve.loaded_model import LoadedModel, load_directory
from serve.sources.base import SourceError


class RegistrySource:
    name = "registry"

    def __init__(
        self, tracking_uri: str, *, model_name: str, alias: str, context_limit: int
    ) -> None:
        self.tracking_uri = tracking_uri
        self.model_name = model_name
        self.alias = alias
        self.context_limit = context_limit

    def describe(self) -> str:
        return f"models:/{self.model_name}@{self.alias} at {_redact(self.tracking_uri)}"

    def fingerprint(self) -> str:
        from housing.registry import RegistryError, version_for_alias

        try:
            info = version_for_alias(self.alias, self.model_name, self.tracking_uri)
        except RegistryError as exc:
            raise SourceError(str(exc)) from exc
        return f"{info.version}:{info.tags.get('artifact_sha256', '')}"

    def load(self) -> LoadedModel:
        from housing.registry import RegistryError, resolve

        # MLflow draws a progress bar on stderr per download; JSON logs have no use for it.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

        tmp = Path(tempfile.mkdtemp(prefix="housing-serve-"))
        try:
            try:
                resolved = resolve(self.alias, self.model_name, self.tracking_uri, dst=tmp)
            except RegistryError as exc:
                raise SourceError(str(exc)) from exc
            tags = resolved.tags
            overrides = {
                "name": resolved.name,
                "version": resolved.version,
                "sha256": resolved.artifact_sha256,
                "fingerprint": f"{resolved.version}:{resolved.artifact_sha256}",
                "run_id": resolved.run_id,
            }
            if resolved.metrics:
                overrides["metrics"] = {
                    str(k): float(v)
                    for k, v in resolved.metrics.items()
                    if isinstance(v, int | float) and math.isfinite(v)
                }
            for key in ("git_commit", "data_md5"):
                if tags.get(key):
                    overrides[key] = tags[key]
            try:
                return load_directory(
                    resolved.bundle_local_dir,
                    source=self.name,
                    alias=resolved.alias,
                    default_name=self.model_name,
                    expected_sha256=tags.get("serving_sha256"),
                    identity_overrides=overrides,
                    context_limit=self.context_limit,
                )
            except SourceError as exc:
                raise SourceError(f"{self.model_name} version {resolved.version}: {exc}") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _redact(uri: str) -> str:
    """Drop credentials from a URI before logging it."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri
