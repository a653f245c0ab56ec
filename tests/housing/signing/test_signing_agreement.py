"""The light verifier agrees with OpenSSF model-signing's own verifier, case by case.

Each case mutates a copy of a champion signed by key A, then both verifiers judge it with
key A and with key B: model-signing (``verifying.Config().use_elliptic_key_verifier``) and
:func:`housing.signing.verify_signature` (the signature layer the API runs; the promotion
policy on top of it is tested in test_signing_verify.py). They must accept and refuse alike.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from signing_support import copy_dir, flip_byte, model_files

from housing.signing import RECORD_FILE, SIGNATURE_FILE, KeyRing, SigningKey, VerificationError
from housing.signing import verify_signature as light_verify

Mutation = Callable[[Path], None]


def _edit_signature(directory: Path, edit: Callable[[dict], None]) -> None:
    sig = json.loads((directory / SIGNATURE_FILE).read_text())
    edit(sig)
    (directory / SIGNATURE_FILE).write_text(json.dumps(sig))


def _flip_sig(sig: dict) -> None:
    raw = bytearray(base64.b64decode(sig["dsseEnvelope"]["signatures"][0]["sig"]))
    raw[10] ^= 0x01
    sig["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()


def _rewrite_payload(sig: dict) -> None:
    statement = json.loads(base64.b64decode(sig["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"] = statement["predicate"]["resources"][:-1]
    sig["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()


def _drop_hint(sig: dict) -> None:
    sig["verificationMaterial"]["publicKey"]["hint"] = ""


def _rename(directory: Path) -> None:
    (directory / "serving/booster.txt").rename(directory / "serving/booster2.txt")


def _git_file(directory: Path) -> None:
    (directory / ".git").mkdir()
    (directory / ".git" / "HEAD").write_text("ref: refs/heads/main\n")


def _empty_dir(directory: Path) -> None:
    (directory / "serving" / "empty").mkdir()


def _truncate_sig(directory: Path) -> None:
    sig = directory / SIGNATURE_FILE
    sig.write_bytes(sig.read_bytes()[:100])


# (case id, mutation, accepted with key A); key B (not the signer) never accepts.
CASES: list[tuple[str, Mutation, bool]] = [
    ("valid", lambda d: None, True),
    ("git-metadata-added", _git_file, True),
    ("gitignore-added", lambda d: (d / ".gitignore").write_text("*.tmp\n"), True),
    ("empty-dir-added", _empty_dir, True),
    ("hint-removed", lambda d: _edit_signature(d, _drop_hint), True),
    ("extra-top-file", lambda d: (d / "notes.txt").write_text("hi"), False),
    ("extra-serving-file", lambda d: (d / "serving" / "x.npy").write_bytes(b"\0"), False),
    ("missing-skops", lambda d: (d / "model.skops").unlink(), False),
    ("missing-record", lambda d: (d / RECORD_FILE).unlink(), False),
    ("renamed-file", _rename, False),
    ("symlink", lambda d: (d / "alias.json").symlink_to("model.json"), False),
    ("signature-flipped", lambda d: _edit_signature(d, _flip_sig), False),
    ("payload-rewritten", lambda d: _edit_signature(d, _rewrite_payload), False),
    ("signature-truncated", _truncate_sig, False),
    ("signature-missing", lambda d: (d / SIGNATURE_FILE).unlink(), False),
]


def _model_signing_accepts(directory: Path, public_key: Path) -> bool:
    from model_signing import verifying

    try:
        verifying.Config().use_elliptic_key_verifier(public_key=public_key).verify(
            directory, directory / SIGNATURE_FILE
        )
    except Exception:  # model-signing raises ValueError, JSONDecodeError, FileNotFoundError...
        return False
    return True


def _light_accepts(directory: Path, key: SigningKey) -> bool:
    try:
        light_verify(directory, KeyRing.of([key.public_key]))
    except VerificationError:
        return False
    return True


def _judge(directory: Path, key_files, key_a: SigningKey, key_b: SigningKey) -> None:
    for name, key, accepted in (("a", key_a, None), ("b", key_b, False)):
        ms = _model_signing_accepts(directory, key_files[name][1])
        light = _light_accepts(directory, key)
        assert ms == light, f"key {name}: model-signing {ms}, light verifier {light}"
        if accepted is not None:
            assert light is accepted


@pytest.mark.parametrize(("case", "mutate", "accepted"), CASES, ids=[c[0] for c in CASES])
def test_agrees_with_model_signing(
    case: str, mutate: Mutation, accepted: bool, champion: Path, key_files, key_a, key_b, capsys
) -> None:
    mutate(champion)
    ms = _model_signing_accepts(champion, key_files["a"][1])
    light = _light_accepts(champion, key_a)
    assert (ms, light) == (accepted, accepted)
    _judge(champion, key_files, key_a, key_b)


def test_agrees_on_a_flipped_byte_in_every_file(
    tmp_path: Path, signed_v1: Path, key_files, key_a, key_b
) -> None:
    for i, relpath in enumerate(model_files(signed_v1)):
        if relpath == SIGNATURE_FILE:
            continue
        directory = copy_dir(signed_v1, tmp_path / f"c{i}")
        flip_byte(directory / relpath)
        assert not _model_signing_accepts(directory, key_files["a"][1]), relpath
        assert not _light_accepts(directory, key_a), relpath
        _judge(directory, key_files, key_a, key_b)


def test_model_signing_signatures_made_by_its_cli_config_verify_lightly(
    tmp_path: Path, key_files, key_b: SigningKey
) -> None:
    """A directory signed by model-signing alone (our record written by hand) verifies here."""
    from model_signing import hashing, signing
    from signing_support import record, write_model_dir

    from housing.signing import verify
    from housing.signing.digests import file_digests

    directory = write_model_dir(tmp_path / "m")
    files = file_digests(directory, ignore=[SIGNATURE_FILE])
    (directory / RECORD_FILE).write_bytes(record("5", sequence=2, files=files).to_bytes())
    config = signing.Config().use_elliptic_key_signer(private_key=key_files["b"][0])
    config.set_hashing_config(hashing.Config().set_ignored_paths(paths=[SIGNATURE_FILE]))
    config.sign(directory, directory / SIGNATURE_FILE)
    result = verify(directory, KeyRing.of([key_b.public_key]), expected={"version": "5"})
    assert result.signed and result.key_id == key_b.key_id
