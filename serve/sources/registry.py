"""The MLflow registry alias (models:/<name>@<alias>). MLflow is imported only when used."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

from housing.artifact import ArtifactError
from serve.loaded_model import LoadedModel, ModelIdentity, assemble
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
        from housing.artifact import load_bundle
        from housing.registry import RegistryError, resolve

        # MLflow draws a progress bar on stderr per download; JSON logs have no use for it.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

        tmp = Path(tempfile.mkdtemp(prefix="housing-serve-"))
        try:
            try:
                resolved = resolve(self.alias, self.model_name, self.tracking_uri, dst=tmp)
            except RegistryError as exc:
                raise SourceError(str(exc)) from exc
            try:
                bundle = load_bundle(
                    resolved.bundle_local_dir, expected_sha256=resolved.artifact_sha256
                )
            except ArtifactError as exc:
                raise SourceError(f"{self.model_name} version {resolved.version}: {exc}") from exc
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        tags = resolved.tags
        metrics = resolved.metrics or {
            str(k): float(v)
            for k, v in (bundle.meta.get("metrics") or {}).items()
            if isinstance(v, int | float) and math.isfinite(v)
        }
        identity = ModelIdentity(
            name=resolved.name,
            version=resolved.version,
            alias=resolved.alias,
            source=self.name,
            sha256=resolved.artifact_sha256,
            fingerprint=f"{resolved.version}:{resolved.artifact_sha256}",
            run_id=resolved.run_id,
            metrics=metrics,
            git_commit=tags.get("git_commit") or bundle.meta.get("git_commit"),
            data_md5=tags.get("data_md5") or bundle.meta.get("data_md5"),
        )
        return assemble(bundle, identity, context_limit=self.context_limit)


def _redact(uri: str) -> str:
    """Drop credentials from a URI before logging it."""
    if "@" in uri and "://" in uri:
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return uri
