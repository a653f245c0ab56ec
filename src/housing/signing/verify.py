"""The light verifier: OpenSSF model-signing's key-based signature format on ``cryptography`` alone.

``import model_signing`` took about 1 s here (sigstore, TUF, protobuf models, pyOpenSSL); the
API's whole start-to-ready budget is 1.5 s. This module verifies the same files —
``model.sig``, a sigstore bundle v0.3 whose DSSE envelope carries an in-toto Statement v1 with
predicate ``https://model_signing/signature/v1.0`` listing every file's sha256 — with the
standard library and ``cryptography`` (tens of milliseconds; see docs/signing.md for the
measurement). tests/housing/signing/test_agreement.py proves it accepts and refuses exactly
what model-signing's own verifier accepts and refuses, on valid and on tampered directories.

On top of model-signing's checks, :func:`verify` applies the promotion policy: the signed
manifest must include ``promotion.json``, whose file list must equal the signed manifest, whose
name and data md5 must agree with ``model.json``, whose name, version and alias must match
what the caller expects (no replay under another version or alias), whose action must not be
``drop`` (the signed record that a challenger lost its alias), and whose sequence number must
not be lower than the one already served (no replay of a demoted champion).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from housing.signing.digests import GIT_PATHS, file_digests
from housing.signing.keys import KeyRing
from housing.signing.record import (
    DROP,
    RECORD_FILE,
    SIGNATURE_FILE,
    PromotionRecord,
    RecordError,
    SigningError,
)

logger = logging.getLogger(__name__)

BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://model_signing/signature/v1.0"
# The only paths a signature may leave out: itself and git metadata (what our signer writes).
ALLOWED_IGNORES = frozenset((SIGNATURE_FILE, *GIT_PATHS))
META_FILE = "model.json"
_HASHES = {256: hashes.SHA256, 384: hashes.SHA384, 521: hashes.SHA512}


class VerificationError(SigningError):
    """A bundle was refused: unsigned, tampered, wrong key, replayed or older than served."""


@dataclass(frozen=True)
class VerificationResult:
    """What :func:`verify` established.

    ``signed`` is True only when a trusted key's signature covers every file and the record;
    it is False only when no key is configured (local development: integrity-only serving).
    Every refusal raises :class:`VerificationError` instead, so a caller cannot forget it.
    """

    signed: bool
    record: PromotionRecord | None
    key_id: str | None
    reason: str


def pae(payload: bytes, payload_type: str = PAYLOAD_TYPE) -> bytes:
    """DSSE v1 pre-authentication encoding (what the ECDSA signature is over)."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise VerificationError(f"{SIGNATURE_FILE}: {what} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise VerificationError(f"{SIGNATURE_FILE}: {what} is not base64") from None


def _envelope(sig_path: Path) -> tuple[bytes, bytes, str]:
    """(payload, DER signature, key hint) from a sigstore bundle; format checks only."""
    try:
        bundle = json.loads(sig_path.read_bytes())
    except FileNotFoundError:
        raise VerificationError(
            f"unsigned bundle: {sig_path} not found and verification keys are configured"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VerificationError(f"{sig_path} is not a readable JSON signature: {exc}") from None
    if not isinstance(bundle, dict) or bundle.get("mediaType") != BUNDLE_MEDIA_TYPE:
        raise VerificationError(f"{sig_path} is not a sigstore bundle v0.3")
    envelope = bundle.get("dsseEnvelope")
    if not isinstance(envelope, dict) or envelope.get("payloadType") != PAYLOAD_TYPE:
        raise VerificationError(f"{sig_path} carries no in-toto DSSE envelope")
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list) or len(signatures) != 1:
        raise VerificationError(f"{sig_path}: expected exactly one DSSE signature")
    payload = _b64(envelope.get("payload"), "DSSE payload")
    signature = _b64(signatures[0].get("sig") if isinstance(signatures[0], dict) else None, "sig")
    material = bundle.get("verificationMaterial")
    public_key = material.get("publicKey") if isinstance(material, dict) else None
    hint = public_key.get("hint") if isinstance(public_key, dict) else None
    return payload, signature, str(hint or "")


def _check_signature(payload: bytes, signature: bytes, hint: str, keys: KeyRing) -> str:
    """The id of the trusted key whose ECDSA signature over PAE(payload) verifies."""
    if hint:
        key = keys.get(hint)
        if key is None:
            raise VerificationError(
                f"{SIGNATURE_FILE} was made by key {hint[:12]}…, which is not a trusted key "
                f"(trusted: {', '.join(k[:12] + '…' for k in keys.ids)})"
            )
        candidates = [(hint, key)]
    else:
        candidates = list(keys)
    message = pae(payload)
    for kid, key in candidates:
        try:
            key.verify(signature, message, ec.ECDSA(_HASHES[key.curve.key_size]()))
        except InvalidSignature:
            continue
        return kid
    raise VerificationError(
        f"{SIGNATURE_FILE}: the signature does not verify with the trusted key(s) "
        f"{', '.join(k[:12] + '…' for k, _ in candidates)} (altered, or signed by another key)"
    )


def _statement_manifest(payload: bytes) -> tuple[dict[str, str], list[str]]:
    """Signed {path: sha256} and ignore list from the in-toto statement (already authenticated)."""
    try:
        statement = json.loads(payload)
        if statement["_type"] != STATEMENT_TYPE:
            raise VerificationError(f"{SIGNATURE_FILE}: not an in-toto Statement v1")
        if statement["predicateType"] != PREDICATE_TYPE:
            raise VerificationError(
                f"{SIGNATURE_FILE}: predicate {statement['predicateType']!r} "
                f"is not {PREDICATE_TYPE!r}"
            )
        (subject,) = statement["subject"]
        root = subject["digest"]["sha256"]
        predicate = statement["predicate"]
        serialization = predicate["serialization"]
        resources = predicate["resources"]
        hasher = hashlib.sha256()
        manifest: dict[str, str] = {}
        for resource in resources:
            if resource["algorithm"] != "sha256":
                raise VerificationError(f"{SIGNATURE_FILE}: {resource['name']} is not sha256")
            hasher.update(bytes.fromhex(resource["digest"]))
            manifest[str(resource["name"])] = str(resource["digest"]).lower()
    except (KeyError, TypeError, ValueError) as exc:
        raise VerificationError(f"{SIGNATURE_FILE}: malformed statement ({exc!r})") from None
    if hasher.hexdigest() != root:
        raise VerificationError(f"{SIGNATURE_FILE}: resource digests do not match the subject")
    if (
        not isinstance(serialization, dict)
        or serialization.get("method") != "files"
        or serialization.get("hash_type") != "sha256"
        or serialization.get("allow_symlinks") is not False
    ):
        raise VerificationError(
            f"{SIGNATURE_FILE}: serialization {serialization!r} is not files/sha256/no-symlinks"
        )
    ignore = [str(p) for p in serialization.get("ignore_paths", [])]
    unexpected = sorted(set(ignore) - ALLOWED_IGNORES)
    if unexpected:
        raise VerificationError(f"{SIGNATURE_FILE}: the signature leaves out {unexpected}")
    return manifest, ignore


def _compare(directory: Path, expected: Mapping[str, str], actual: Mapping[str, str]) -> None:
    """Refuse, naming the first offending file, unless the two manifests are equal."""
    problems = []
    for path in sorted(set(expected) | set(actual)):
        if path not in actual:
            problems.append(f"{directory / path} is missing (it is signed)")
        elif path not in expected:
            problems.append(f"{directory / path} is not covered by the signature")
        elif actual[path] != expected[path]:
            problems.append(
                f"{directory / path} was modified: sha256 {actual[path][:12]}… "
                f"is not the signed {expected[path][:12]}…"
            )
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise VerificationError(problems[0] + more)


def verify_signature(directory: str | Path, keys: KeyRing) -> tuple[dict[str, str], str]:
    """model-signing's check: a trusted key signed exactly these files. Returns (manifest, key id).

    Equivalent to ``model_signing.verifying.Config().use_elliptic_key_verifier(public_key=K)
    .verify(directory, directory / "model.sig")`` for each key K in ``keys``.
    """
    directory = Path(directory)
    if not len(keys):
        raise VerificationError("no verification keys configured")
    if not directory.is_dir():
        raise VerificationError(f"{directory} is not a directory")
    payload, signature, hint = _envelope(directory / SIGNATURE_FILE)
    kid = _check_signature(payload, signature, hint, keys)
    manifest, ignore = _statement_manifest(payload)
    try:
        actual = file_digests(directory, ignore)
    except SigningError as exc:
        raise VerificationError(str(exc)) from None
    _compare(directory, manifest, actual)
    return manifest, kid


def _read_record(directory: Path, manifest: Mapping[str, str]) -> PromotionRecord:
    if RECORD_FILE not in manifest:
        raise VerificationError(f"the signature covers no {RECORD_FILE}: not a promotion")
    # The bytes were hashed a moment ago; re-check them so what we parse is what was signed.
    raw = (directory / RECORD_FILE).read_bytes()
    if hashlib.sha256(raw).hexdigest() != manifest[RECORD_FILE]:
        raise VerificationError(f"{directory / RECORD_FILE} changed during verification")
    try:
        record = PromotionRecord.from_bytes(raw)
    except RecordError as exc:
        raise VerificationError(str(exc)) from None
    signed_files = {k: v for k, v in manifest.items() if k != RECORD_FILE}
    if dict(record.files) != signed_files:
        raise VerificationError(
            f"{RECORD_FILE} lists files other than the signed ones; refusing an inconsistent record"
        )
    return record


def _unsigned_record(directory: Path) -> PromotionRecord | None:
    """Without keys: the record (if any), its file list checked against the files.

    Not authenticated (anyone could have written it), but it still catches a record that
    does not describe these files, and lets development serve only what was promoted.
    """
    path = directory / RECORD_FILE
    if not path.is_file():
        return None
    try:
        record = PromotionRecord.from_bytes(path.read_bytes())
        actual = file_digests(directory, [SIGNATURE_FILE, RECORD_FILE, *GIT_PATHS])
    except SigningError as exc:
        raise VerificationError(str(exc)) from None
    _compare(directory, record.files, actual)
    return record


def _check_meta(directory: Path, record: PromotionRecord) -> None:
    """model.json (signed too) must describe the same model the record promotes."""
    path = directory / META_FILE
    if META_FILE not in record.files:
        return
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise VerificationError(f"cannot read {path}: {exc.strerror}") from None
    if hashlib.sha256(raw).hexdigest() != record.files[META_FILE]:
        raise VerificationError(f"{path} changed during verification")
    try:
        meta = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VerificationError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise VerificationError(f"{path} is not a JSON object")
    for key in ("name", "data_md5"):
        if key in meta and str(meta[key]) != getattr(record, key):
            raise VerificationError(
                f"{path} {key} {meta[key]!r} differs from the promotion record's "
                f"{getattr(record, key)!r}"
            )


def check_record(
    record: PromotionRecord,
    *,
    expected: Mapping[str, object] | None = None,
    min_sequence: int | None = None,
) -> None:
    """Refuse a record promoted as something else, a drop, or older than the one served."""
    if record.action == DROP:
        raise VerificationError(
            f"{RECORD_FILE} records that version {record.version} was dropped from "
            f"{record.alias!r} (move #{record.sequence}): it no longer holds the alias"
        )
    for key, want in (expected or {}).items():
        if key not in ("name", "version", "alias", "data_md5", "git_commit"):
            raise ValueError(f"cannot expect record field {key!r}")
        if want is not None and getattr(record, key) != str(want):
            raise VerificationError(
                f"{RECORD_FILE} {key} is {getattr(record, key)!r}, expected {str(want)!r}: "
                "a signed bundle replayed under another "
                f"{'version' if key == 'version' else key}"
            )
    if min_sequence is not None and record.sequence < min_sequence:
        raise VerificationError(
            f"{RECORD_FILE} sequence {record.sequence} is older than the served champion's "
            f"{min_sequence}: a demoted version comes back only by a new signed rollback"
        )


def verify(
    directory: str | Path,
    keys: KeyRing,
    *,
    expected: Mapping[str, object] | None = None,
    min_sequence: int | None = None,
) -> VerificationResult:
    """Verify a champion directory before anything in it is deserialised.

    - ``keys`` empty: verification is off (local development); returns ``signed=False``
      with the (unauthenticated) record when the directory has one, after checking its
      file list against the files and against ``expected``/``min_sequence``.
    - otherwise the directory must carry a trusted signature over every file and a
      consistent promotion record that matches ``expected`` (e.g. ``{"name": ...,
      "version": "7", "alias": "champion"}``; None values are not checked) and whose
      sequence is ``>= min_sequence`` (the served record's sequence). Any failure raises
      :class:`VerificationError` with one line naming the file or the check.
    """
    directory = Path(directory)
    if not len(keys):
        record = _unsigned_record(directory)
        if record is not None:
            check_record(record, expected=expected, min_sequence=min_sequence)
        return VerificationResult(
            signed=False,
            record=record,
            key_id=None,
            reason="no verification keys configured: serving integrity-checked, unsigned",
        )
    manifest, kid = verify_signature(directory, keys)
    record = _read_record(directory, manifest)
    _check_meta(directory, record)
    check_record(record, expected=expected, min_sequence=min_sequence)
    logger.info(
        "signature ok: %s v%s @%s, sequence %d, key %s…",
        record.name,
        record.version,
        record.alias,
        record.sequence,
        kid[:12],
    )
    return VerificationResult(
        signed=True,
        record=record,
        key_id=kid,
        reason=f"signed by key {kid[:12]}… ({record.action} #{record.sequence} by {record.who})",
    )
