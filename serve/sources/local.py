"""The bundle directory that `dvc pull` restores (models/ by default)."""

from __future__ import annotations

import json
from pathlib import Path

from housing.artifact import META_FILE, ArtifactError
from serve.loaded_model import LoadedModel, assemble, identity_from_meta
from serve.sources.base import SourceError


class LocalSource:
    name = "local"

    def __init__(self, directory: Path, *, model_name: str, context_limit: int) -> None:
        self.directory = Path(directory)
        self.model_name = model_name
        self.context_limit = context_limit

    def describe(self) -> str:
        return f"local bundle {self.directory}"

    def fingerprint(self) -> str:
        meta_path = self.directory / META_FILE
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SourceError(f"{meta_path} not found (run `dvc pull` or the pipeline)") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise SourceError(f"unreadable {meta_path}: {exc}") from exc
        sha = meta.get("sha256") if isinstance(meta, dict) else None
        if not sha:
            raise SourceError(f"{meta_path} records no sha256")
        return str(sha)

    def load(self) -> LoadedModel:
        from housing.artifact import load_bundle

        if not (self.directory / META_FILE).is_file():
            raise SourceError(
                f"no model bundle in {self.directory} (run `dvc pull` or the pipeline)"
            )
        try:
            bundle = load_bundle(self.directory)
        except ArtifactError as exc:
            raise SourceError(str(exc)) from exc
        identity = identity_from_meta(
            bundle.meta, source=self.name, alias=None, default_name=self.model_name
        )
        return assemble(bundle, identity, context_limit=self.context_limit)
