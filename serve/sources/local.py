"""The bundle directory that `dvc pull` restores (models/ by default): model.json + serving/."""

from __future__ import annotations

import json
from pathlib import Path

from housing.serving import META_FILE
from serve.loaded_model import LoadedModel, load_directory
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
        """The serving bundle's sha256 as model.json records it (what `load` verifies)."""
        meta_path = self.directory / META_FILE
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SourceError(f"{meta_path} not found (run `dvc pull` or the pipeline)") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise SourceError(f"unreadable {meta_path}: {exc}") from exc
        sha = meta.get("serving_sha256") if isinstance(meta, dict) else None
        if not sha:
            raise SourceError(f"{meta_path} records no serving_sha256 (re-run the register stage)")
        return str(sha)

    def load(self) -> LoadedModel:
        if not (self.directory / META_FILE).is_file():
            raise SourceError(
                f"no model bundle in {self.directory} (run `dvc pull` or the pipeline)"
            )
        return load_directory(
            self.directory,
            source=self.name,
            alias=None,
            default_name=self.model_name,
            context_limit=self.context_limit,
        )
