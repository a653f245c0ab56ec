"""Replay refused across restarts: the newest promotion served, kept on disk.

A signed champion carries its promotion's sequence number. While the API runs, a reload
never goes below the served champion's sequence (``serve.champion``). That memory used to
end with the process: after a restart, an older champion, validly signed, put back into
``champion/``, the GCS prefix or the registry's alias, was served again.

:class:`ReplayMarks` keeps a high-water mark per scope in ``REPLAY_STATE_DIR`` (a writable
directory of its own: model directories are mounted read-only, and GCS has no local
directory). A scope is the signing key, the registry the promotion was recorded in (the
record's ``extra.registry``; ``-`` for records signed before it was written), the model
name and the alias: sequences count per registered model and registry, and a key rotation
starts a new scope. A champion whose sequence is below its scope's mark is refused with
one line; an equal one (the same champion after a restart) is served.

A registry that was recreated on purpose counts from 1 again, so its champions are refused
until its marks are reset: ``python -m serve.replay reset --registry <uri>`` (docs/api.md).
Unsigned champions (verification off, local development) are never marked.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from serve.sources.base import SourceError

logger = logging.getLogger(__name__)

MARKS_FILE = "marks.json"
_LOCK_FILE = ".marks.lock"
STATE_DIR_ENV = "REPLAY_STATE_DIR"


@dataclass(frozen=True)
class Scope:
    """Whose sequence numbers a mark compares: one key, registry, model and alias."""

    key_id: str
    registry: str
    name: str
    alias: str

    @property
    def key(self) -> str:
        return json.dumps([self.key_id, self.registry, self.name, self.alias])

    @classmethod
    def of(cls, identity: Any) -> Scope | None:
        """The scope of a loaded model's identity; None when it is not signed."""
        if not identity.signed or not identity.key_id or identity.promotion_sequence is None:
            return None
        promotion = identity.promotion or {}
        return cls(
            key_id=str(identity.key_id),
            registry=str(promotion.get("registry") or "-"),
            name=str(identity.name),
            alias=str(identity.alias or "champion"),
        )


class ReplayMarks:
    """High-water marks of served promotion sequences, in ``directory/marks.json``.

    Writes are atomic (a temporary file renamed over the old one) and serialised between
    processes (``flock`` on a lock file beside it), so several API workers share one
    directory.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    # -- storage ------------------------------------------------------------------------

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads((self.directory / MARKS_FILE).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            # A mark that cannot be read must not be taken as "no mark": refuse, loudly.
            raise SourceError(
                f"refused: replay marks {self.directory / MARKS_FILE} unreadable ({exc}); "
                "fix or reset them (python -m serve.replay reset)"
            ) from None
        return data if isinstance(data, dict) else {}

    def _write(self, marks: dict[str, dict[str, Any]]) -> None:
        text = json.dumps(marks, indent=2, sort_keys=True) + "\n"
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".marks-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            Path(tmp).replace(self.directory / MARKS_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / _LOCK_FILE).open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # -- the guard ----------------------------------------------------------------------

    def mark(self, scope: Scope) -> int | None:
        entry = self._read().get(scope.key)
        return int(entry["sequence"]) if entry else None

    def admit(self, identity: Any) -> None:
        """Refuse ``identity`` if an equal-scoped champion with a higher sequence was served
        before; otherwise raise the mark to its sequence. Called before the model is swapped
        in, so a refused champion is never served."""
        scope = Scope.of(identity)
        if scope is None:
            return
        sequence = int(identity.promotion_sequence)
        with self._locked():
            marks = self._read()
            entry = marks.get(scope.key)
            if entry and sequence < int(entry["sequence"]):
                raise SourceError(
                    f"refused: promotion sequence {sequence} (version {identity.version}) is "
                    f"older than {entry['sequence']} (version {entry.get('version')}), the "
                    f"newest this API has served for key {scope.key_id[:12]}… of registry "
                    f"{scope.registry}: a replayed champion (marks in {self.directory}; "
                    "reset with python -m serve.replay reset)"
                )
            if entry and sequence == int(entry["sequence"]):
                return
            marks[scope.key] = {
                "sequence": sequence,
                "version": str(identity.version),
                "key_id": scope.key_id,
                "registry": scope.registry,
                "name": scope.name,
                "alias": scope.alias,
                "since": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            self._write(marks)

    def entries(self) -> list[dict[str, Any]]:
        return sorted(self._read().values(), key=lambda e: (e["registry"], e["name"]))

    def reset(self, *, registry: str | None = None, key_id: str | None = None) -> int:
        """Forget the marks of ``registry`` and/or ``key_id`` (all when neither); how many."""
        with self._locked():
            marks = self._read()
            keep = {
                k: e
                for k, e in marks.items()
                if (registry is not None and e.get("registry") != registry)
                or (key_id is not None and not str(e.get("key_id", "")).startswith(key_id))
            }
            self._write(keep)
            return len(marks) - len(keep)


def open_marks(directory: Path | None) -> ReplayMarks | None:
    """The marks in ``directory``, or None (with a warning) when it is unset or unwritable."""
    if directory is None:
        logger.warning(
            "REPLAY_STATE_DIR is not set: replay protection ends when the process does "
            "(an older signed champion would be served after a restart)"
        )
        return None
    marks = ReplayMarks(directory)
    try:
        with marks._locked():
            marks._read()
    except (OSError, SourceError) as exc:
        logger.warning(
            "replay marks in %s unusable (%s): replay protection ends when the process does",
            directory,
            exc,
        )
        return None
    return marks


def main(argv: list[str] | None = None) -> int:
    """``python -m serve.replay show|reset``: list or forget the marks of REPLAY_STATE_DIR."""
    parser = argparse.ArgumentParser(prog="python -m serve.replay", description=main.__doc__)
    parser.add_argument("command", choices=("show", "reset"))
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=os.environ.get(STATE_DIR_ENV) or None,
        help=f"the marks' directory (default: ${STATE_DIR_ENV})",
    )
    parser.add_argument("--registry", help="reset only this registry's marks (as `show` names it)")
    parser.add_argument("--key-id", help="reset only the marks of keys starting with this id")
    args = parser.parse_args(argv)
    if args.state_dir is None:
        parser.error(f"no state directory: pass --state-dir or set {STATE_DIR_ENV}")
    marks = ReplayMarks(args.state_dir)
    try:
        if args.command == "show":
            for e in marks.entries():
                sys.stdout.write(
                    f"{e['registry']}  {e['name']}@{e['alias']}  key {e['key_id'][:12]}…  "
                    f"sequence {e['sequence']} (version {e['version']}, since {e['since']})\n"
                )
            return 0
        n = marks.reset(registry=args.registry, key_id=args.key_id)
    except (OSError, SourceError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    sys.stdout.write(f"reset {n} mark(s) in {args.state_dir}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
