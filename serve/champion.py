"""Only a promoted champion is served: its signature and record are checked before parsing.

Every source (registry, GCS, local) ends here once a champion directory is on local disk:
``model.json``, ``serving/``, ``promotion.json`` (the promotion record) and ``model.sig``.

- With verification keys configured, the directory must carry a trusted key's signature over
  every file and the record, the record must promote this model under the name, version and
  alias the source expects (no replay under another version), and its sequence must not be
  lower than the served champion's (a demoted version comes back only by a new signed
  rollback). Anything else is refused with one line and the served model stays.
- Without keys (local development) the record is still required (a candidate that was
  never promoted is refused) and checked against the files, but nothing is authenticated:
  the model is served as ``signed: false`` and start-up says so in a warning.

Only after that is a byte of the model parsed: the serving bundle is loaded against the
record's signed ``serving/manifest.json`` sha256.

The registry's ``challenger`` (the shadow) is verified by the same function with
``expected={"alias": "challenger", ...}``: its record is signed at the challenger's move and
counts the challenger's own sequence; a record that the alias was dropped is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serve.loaded_model import LoadedModel, load_directory
from serve.sources.base import SourceError

if TYPE_CHECKING:
    from housing.signing import KeyRing

RECORD_FILE = "promotion.json"
SIGNATURE_FILE = "model.sig"


def load_champion(
    directory: Path,
    *,
    keys: KeyRing,
    expected: Mapping[str, object],
    min_sequence: int | None,
    source: str,
    default_name: str,
    context_limit: int,
    identity_overrides: Mapping[str, Any] | None = None,
) -> LoadedModel:
    """Verify, then load, the champion in ``directory``; SourceError (one line) if refused."""
    from housing.signing import SigningError, verify

    directory = Path(directory)
    if not (directory / RECORD_FILE).is_file():  # say what it is before how it fails
        raise SourceError(
            f"refused: {directory} has no {RECORD_FILE}: not a promoted champion (a candidate "
            "is never served; promotion writes the record)"
        )
    try:
        result = verify(directory, keys, expected=expected, min_sequence=min_sequence)
    except SigningError as exc:
        raise SourceError(f"refused: {exc}") from None
    record = result.record
    if record is None:
        raise SourceError(
            f"refused: {directory} has no {RECORD_FILE}: not a promoted champion (a candidate "
            "is never served; promotion writes the record)"
        )
    try:
        serving_sha = record.serving_sha256
    except SigningError as exc:
        raise SourceError(f"refused: {exc}") from None
    overrides: dict[str, Any] = {
        # What the local and GCS sources' fingerprint() read: the record's bytes (the
        # registry source overrides it with the alias target's).
        "fingerprint": record_fingerprint((directory / RECORD_FILE).read_bytes()),
        "version": record.version,
        "alias": record.alias,
        "data_md5": record.data_md5,
        "git_commit": record.git_commit,
        "signed": result.signed,
        "key_id": result.key_id,
        "promotion_sequence": record.sequence,
        "promotion": {
            "action": record.action,
            "sequence": record.sequence,
            "who": record.who,
            "timestamp": record.timestamp,
            "decision": record.decision,
            # The registry the sequence counts in (serve/replay.py); signed with the record.
            "registry": str(record.extra.get("registry") or "") or None,
        },
    }
    overrides |= dict(identity_overrides or {})
    return load_directory(
        directory,
        source=source,
        alias=record.alias,
        default_name=default_name,
        expected_sha256=serving_sha,
        identity_overrides=overrides,
        context_limit=context_limit,
        # Verified above with the API's own keys (settings or .env), not the environment's.
        signed=result.signed,
    )


def record_fingerprint(raw: bytes) -> str:
    """A champion's fingerprint: the sha256 of its record (changes with every promotion)."""
    import hashlib

    return hashlib.sha256(raw).hexdigest()
