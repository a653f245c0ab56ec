"""The interface every model source implements."""

from __future__ import annotations

from typing import Protocol

from serve.loaded_model import LoadedModel


class SourceError(RuntimeError):
    """A source cannot provide a model now; the message (one line) says why."""


class NoAliasError(SourceError):
    """The registry has no version under the alias (e.g. no challenger: the shadow is idle)."""


class ModelSource(Protocol):
    name: str

    def describe(self) -> str:
        """Where this source looks, for logs (no secrets)."""
        ...

    def fingerprint(self) -> str:
        """A cheap identifier of the model the source offers now; changes when the model does."""
        ...

    def load(self, min_sequence: int | None = None) -> LoadedModel:
        """Fetch, verify (signature and record, then sha256s, before deserialising) and
        assemble the champion; refuse a record older than ``min_sequence``."""
        ...
