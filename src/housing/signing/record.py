"""The promotion record: what a signature says about a model directory.

A signed champion directory holds the model files (``model.json``, ``serving/``, optionally
``model.skops``), a promotion record ``promotion.json`` and the signature ``model.sig``.
The signature covers every file's sha256, the record's included, so the record binds the
bytes to one registered name, version and alias, to the data and code they came from, to the
gate decision and to a promotion sequence number that only ever grows.

Imports the standard library only (the API reads records at start-up).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

RECORD_FILE = "promotion.json"
SIGNATURE_FILE = "model.sig"
RECORD_FORMAT = "housing-promotion/v1"
# promote/rollback give the alias to the version; drop records that it took the alias off it
# (a challenger promoted or dropped): a verifier never serves a drop (verify.check_record).
ACTIONS = ("promote", "rollback", "drop")
DROP = "drop"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REQUIRED_STR = ("name", "version", "alias", "data_md5", "git_commit", "decision")
_REQUIRED_STR += ("action", "timestamp", "who")


class SigningError(RuntimeError):
    """Signing or verification could not proceed; the message is one line."""


class RecordError(SigningError):
    """A promotion record is malformed."""


@dataclass(frozen=True)
class PromotionRecord:
    """One promotion (or rollback) of one registered version to one alias, or (``drop``)
    the alias taken off it.

    ``files`` maps each model file's POSIX path (relative to the directory) to its sha256;
    it is filled in by the signer, never by hand. ``extra`` carries optional context
    (run id, previous champion, gate intervals) that the verifier does not interpret.
    """

    name: str
    version: str
    alias: str
    data_md5: str
    git_commit: str
    decision: str
    sequence: int
    timestamp: str
    who: str
    action: str = "promote"
    files: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": RECORD_FORMAT,
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "action": self.action,
            "data_md5": self.data_md5,
            "git_commit": self.git_commit,
            "decision": self.decision,
            "sequence": self.sequence,
            "timestamp": self.timestamp,
            "who": self.who,
            "files": dict(sorted(self.files.items())),
            "extra": dict(self.extra),
        }

    def to_bytes(self) -> bytes:
        """Canonical bytes: sorted keys, two-space indent, no NaN, one trailing newline."""
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False)
        return (text + "\n").encode("utf-8")

    @property
    def serving_sha256(self) -> str:
        """sha256 of ``serving/manifest.json``: the serving loader's ``expected_sha256``."""
        return self.sha256_of("serving/manifest.json")

    def sha256_of(self, relpath: str) -> str:
        """The signed sha256 of one model file (e.g. ``serving/manifest.json``)."""
        try:
            return self.files[relpath]
        except KeyError:
            raise RecordError(f"{RECORD_FILE} lists no file {relpath!r}") from None

    @classmethod
    def from_dict(cls, data: Any) -> PromotionRecord:
        """Validate and build a record; every problem is a one-line :class:`RecordError`."""
        if not isinstance(data, dict):
            raise RecordError(f"{RECORD_FILE} is not a JSON object")
        if data.get("format") != RECORD_FORMAT:
            raise RecordError(
                f"{RECORD_FILE} format {data.get('format')!r} is not {RECORD_FORMAT!r}"
            )
        for key in _REQUIRED_STR:
            value = data.get(key)
            if not isinstance(value, str) or not value:
                raise RecordError(f"{RECORD_FILE} field {key!r} must be a non-empty string")
        if data["action"] not in ACTIONS:
            raise RecordError(f"{RECORD_FILE} action {data['action']!r} is not one of {ACTIONS}")
        sequence = data.get("sequence")
        if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
            raise RecordError(f"{RECORD_FILE} field 'sequence' must be an integer >= 0")
        files = data.get("files")
        if not isinstance(files, dict) or not files:
            raise RecordError(f"{RECORD_FILE} field 'files' must be a non-empty object")
        for path, digest in files.items():
            if not isinstance(digest, str) or not _SHA256.match(digest):
                raise RecordError(f"{RECORD_FILE} sha256 of {path!r} is not 64 hex digits")
        extra = data.get("extra", {})
        if not isinstance(extra, dict):
            raise RecordError(f"{RECORD_FILE} field 'extra' must be an object")
        return cls(
            **{key: data[key] for key in _REQUIRED_STR},
            sequence=sequence,
            files=dict(files),
            extra=extra,
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> PromotionRecord:
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RecordError(f"{RECORD_FILE} is not JSON: {exc}") from None
        return cls.from_dict(data)
