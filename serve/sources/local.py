"""The champion directory the register stage exports (``champion/`` by default).

Holds ``model.json``, ``serving/``, ``promotion.json`` and ``model.sig``; served only after
:func:`serve.champion.load_champion` accepts it. The candidate the pipeline writes to
``models/`` has no promotion record and is refused if pointed at.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from serve.champion import RECORD_FILE, load_champion, record_fingerprint
from serve.loaded_model import LoadedModel
from serve.sources.base import SourceError

if TYPE_CHECKING:
    from housing.signing import KeyRing


def _hint(directory: Path) -> str:
    """What makes a champion appear in ``directory``: only steps that work here."""
    published = directory.with_name(f"{directory.name}.dvc")
    if published.is_file():
        return f"`dvc pull {published.name}` restores the published one; `make pipeline` makes one"
    return f"`make pipeline` makes one; no champion is published here (no {published.name})"


class LocalSource:
    name = "local"

    def __init__(
        self,
        directory: Path,
        *,
        model_name: str,
        context_limit: int,
        keys: KeyRing,
    ) -> None:
        self.directory = Path(directory)
        self.model_name = model_name
        self.context_limit = context_limit
        self.keys = keys

    def describe(self) -> str:
        return f"local champion {self.directory}"

    def fingerprint(self) -> str:
        """The sha256 of the promotion record: changes with every promotion or rollback."""
        path = self.directory / RECORD_FILE
        try:
            return record_fingerprint(path.read_bytes())
        except FileNotFoundError:
            raise SourceError(f"no champion: {path} not found ({_hint(self.directory)})") from None
        except OSError as exc:
            raise SourceError(f"unreadable {path}: {exc.strerror}") from None

    def load(self, min_sequence: int | None = None) -> LoadedModel:
        if not self.directory.is_dir():
            raise SourceError(f"no champion: {self.directory} not found ({_hint(self.directory)})")
        return load_champion(
            self.directory,
            keys=self.keys,
            expected={"name": self.model_name, "alias": "champion"},
            min_sequence=min_sequence,
            source=self.name,
            default_name=self.model_name,
            context_limit=self.context_limit,
        )
