"""Security tests of the light verifier: every refusal is one line naming the file or the check."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from pathlib import Path

import pytest
from signing_support import (
    MODEL_NAME,
    copy_dir,
    flip_byte,
    model_files,
    record,
    signed_champion,
    write_model_dir,
)

from housing.signing import (
    RECORD_FILE,
    SIGNATURE_FILE,
    KeyRing,
    PromotionRecord,
    SigningError,
    SigningKey,
    VerificationError,
    sign_directory,
    verify,
)


def refused(directory: Path, keys: KeyRing, **kw) -> str:
    with pytest.raises(VerificationError) as info:
        verify(directory, keys, **kw)
    message = str(info.value)
    assert "\n" not in message and message
    return message


def test_a_valid_champion_verifies_with_its_record(champion: Path, ring_a: KeyRing, key_a) -> None:
    result = verify(champion, ring_a, expected={"name": MODEL_NAME, "version": "1"}, min_sequence=4)
    assert result.signed and result.key_id == key_a.key_id
    rec = result.record
    assert (rec.name, rec.version, rec.alias, rec.sequence) == (MODEL_NAME, "1", "champion", 4)
    # The record carries every model file's sha256, the serving manifest's included.
    expected = set(model_files(champion)) - {RECORD_FILE, SIGNATURE_FILE}
    assert set(rec.files) == expected and "serving/manifest.json" in rec.files
    assert "model.skops" in rec.files
    manifest = (champion / "serving" / "manifest.json").read_bytes()
    assert rec.serving_sha256 == hashlib.sha256(manifest).hexdigest()


def test_re_signing_a_champion_replaces_its_record_and_signature(
    champion: Path, key_a: SigningKey, key_b: SigningKey
) -> None:
    """A rollback re-signs the same bytes with a new record (and here, a rotated key)."""
    sign_directory(champion, record("1", sequence=9, action="rollback"), key_b)
    ring = KeyRing.of([key_a.public_key, key_b.public_key])
    result = verify(champion, ring, min_sequence=5)
    assert result.key_id == key_b.key_id and result.record.sequence == 9
    assert set(result.record.files) == set(model_files(champion)) - {RECORD_FILE, SIGNATURE_FILE}


def test_no_keys_configured_is_unsigned_not_refused(tmp_path: Path) -> None:
    plain = write_model_dir(tmp_path / "plain")
    result = verify(plain, KeyRing.of([]))
    assert not result.signed and result.record is None and "no verification keys" in result.reason


def test_unsigned_bundle_with_verification_on_is_refused(tmp_path: Path, ring_a: KeyRing) -> None:
    plain = write_model_dir(tmp_path / "plain")
    message = refused(plain, ring_a)
    assert "unsigned bundle" in message and SIGNATURE_FILE in message


@pytest.mark.parametrize(
    "relpath",
    [
        "model.json",
        "model.skops",
        RECORD_FILE,
        "serving/manifest.json",
        "serving/booster.txt",
        "serving/coords.npy",
        "serving/config.json",
    ],
)
def test_one_flipped_byte_in_any_file_is_refused_naming_it(
    champion: Path, ring_a: KeyRing, relpath: str
) -> None:
    flip_byte(champion / relpath)
    message = refused(champion, ring_a)
    assert relpath in message and "modified" in message


def test_every_file_of_the_champion_is_covered(champion: Path, ring_a: KeyRing) -> None:
    """No file escapes: flipping the first byte of each one, in turn, is refused."""
    for relpath in model_files(champion):
        if relpath == SIGNATURE_FILE:
            continue
        original = (champion / relpath).read_bytes()
        flip_byte(champion / relpath, 0)
        assert relpath in refused(champion, ring_a)
        (champion / relpath).write_bytes(original)
    assert verify(champion, ring_a).signed


def test_a_tampered_signature_is_refused(champion: Path, ring_a: KeyRing) -> None:
    sig = json.loads((champion / SIGNATURE_FILE).read_text())
    raw = bytearray(base64.b64decode(sig["dsseEnvelope"]["signatures"][0]["sig"]))
    raw[-1] ^= 0x01
    sig["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()
    (champion / SIGNATURE_FILE).write_text(json.dumps(sig))
    assert "does not verify" in refused(champion, ring_a)


def test_a_rewritten_payload_is_refused(champion: Path, ring_a: KeyRing) -> None:
    """Editing a digest in the signed statement (to match a tampered file) breaks the signature."""
    sig = json.loads((champion / SIGNATURE_FILE).read_text())
    statement = json.loads(base64.b64decode(sig["dsseEnvelope"]["payload"]))
    flip_byte(champion / "serving/booster.txt")
    for resource in statement["predicate"]["resources"]:
        if resource["name"] == "serving/booster.txt":
            resource["digest"] = hashlib.sha256(
                (champion / "serving/booster.txt").read_bytes()
            ).hexdigest()
    sig["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    (champion / SIGNATURE_FILE).write_text(json.dumps(sig))
    assert "does not verify" in refused(champion, ring_a)


def test_an_added_or_removed_file_is_refused(champion: Path, ring_a: KeyRing) -> None:
    (champion / "serving" / "extra.npy").write_bytes(b"\x93NUMPY")
    message = refused(champion, ring_a)
    assert "serving/extra.npy" in message and "not covered" in message
    (champion / "serving" / "extra.npy").unlink()
    (champion / "model.skops").unlink()
    message = refused(champion, ring_a)
    assert "model.skops" in message and "missing" in message


def test_a_symlink_is_refused(champion: Path, ring_a: KeyRing) -> None:
    (champion / "serving" / "link.txt").symlink_to("/etc/hostname")
    message = refused(champion, ring_a)
    assert "serving/link.txt" in message and "symbolic link" in message


def test_signature_from_another_key_is_refused(
    tmp_path: Path, ring_a: KeyRing, key_b: SigningKey
) -> None:
    other = signed_champion(tmp_path / "other", key_b, "1", sequence=4)
    message = refused(other, ring_a)
    assert key_b.key_id[:12] in message and "not a trusted key" in message


def test_another_key_without_the_hint_is_refused(
    tmp_path: Path, ring_a: KeyRing, key_b: SigningKey
) -> None:
    """Removing the key hint does not help: the signature is checked against every trusted key."""
    other = signed_champion(tmp_path / "other", key_b, "1", sequence=4)
    sig = json.loads((other / SIGNATURE_FILE).read_text())
    sig["verificationMaterial"]["publicKey"]["hint"] = ""
    (other / SIGNATURE_FILE).write_text(json.dumps(sig))
    assert "does not verify" in refused(other, ring_a)


def test_replay_under_another_version_or_alias_is_refused(champion: Path, ring_a: KeyRing) -> None:
    """The registry says v2 is champion; the files are a validly signed v1: refused."""
    message = refused(champion, ring_a, expected={"name": MODEL_NAME, "version": "2"})
    assert "version is '1', expected '2'" in message and "replayed" in message
    message = refused(champion, ring_a, expected={"alias": "challenger"})
    assert "alias is 'champion'" in message
    assert verify(champion, ring_a, expected={"version": 1, "alias": None}).signed


def test_a_valid_signature_over_another_versions_record_is_refused(
    tmp_path: Path, signed_v1: Path, key_a: SigningKey, ring_a: KeyRing
) -> None:
    """v1's genuine record + signature laid over v2's files: the files do not match the record."""
    v2 = signed_champion(tmp_path / "v2", key_a, "2", sequence=5, seed=7)
    mixed = copy_dir(v2, tmp_path / "mixed")
    for name in (RECORD_FILE, SIGNATURE_FILE):
        (mixed / name).write_bytes((signed_v1 / name).read_bytes())
    message = refused(mixed, ring_a, expected={"version": "2"})
    assert "was modified" in message
    # And v2's record over v1's files, likewise.
    mixed_back = copy_dir(signed_v1, tmp_path / "mixed_back")
    (mixed_back / RECORD_FILE).write_bytes((v2 / RECORD_FILE).read_bytes())
    assert RECORD_FILE in refused(mixed_back, ring_a)


def test_an_older_sequence_than_the_served_one_is_refused(champion: Path, ring_a: KeyRing) -> None:
    message = refused(champion, ring_a, min_sequence=5)
    assert "sequence 4 is older than the served champion's 5" in message
    assert verify(champion, ring_a, min_sequence=4).signed  # the same champion reloads
    assert verify(champion, ring_a, min_sequence=0).signed


def test_a_rollback_comes_back_only_with_a_new_higher_sequence(
    tmp_path: Path, key_a: SigningKey, ring_a: KeyRing
) -> None:
    """v1 (seq 4) was demoted by v2 (seq 5); a new signed rollback of v1 (seq 6) is accepted."""
    rollback = signed_champion(tmp_path / "rb", key_a, "1", sequence=6, action="rollback")
    result = verify(rollback, ring_a, expected={"version": "1"}, min_sequence=5)
    assert result.signed and result.record.action == "rollback" and result.record.sequence == 6


def test_key_rotation_accepts_either_trusted_key(
    tmp_path: Path, key_a: SigningKey, key_b: SigningKey
) -> None:
    ring = KeyRing.of([key_a.public_key, key_b.public_key])
    for key in (key_a, key_b):
        directory = signed_champion(tmp_path / key.key_id[:8], key, "3", sequence=9)
        result = verify(directory, ring)
        assert result.signed and result.key_id == key.key_id
    # Retiring key A: its signatures are refused from then on.
    retired = KeyRing.of([key_b.public_key])
    assert "not a trusted key" in refused(tmp_path / key_a.key_id[:8], retired)


def test_a_record_that_disagrees_with_model_json_is_refused(
    tmp_path: Path, key_a: SigningKey, ring_a: KeyRing
) -> None:
    write_model_dir(tmp_path / "m")
    sign_directory(tmp_path / "m", record("1", name="some_other_model"), key_a)
    message = refused(tmp_path / "m", ring_a)
    assert "model.json name" in message and "some_other_model" in message


def test_a_signature_without_a_promotion_record_is_refused(
    tmp_path: Path, key_files, ring_a: KeyRing
) -> None:
    """A bare model-signing signature (no record) proves integrity, not a promotion."""
    from model_signing import hashing, signing

    plain = write_model_dir(tmp_path / "plain")
    config = signing.Config().use_elliptic_key_signer(private_key=key_files["a"][0])
    config.set_hashing_config(hashing.Config().set_ignored_paths(paths=[SIGNATURE_FILE]))
    config.sign(plain, plain / SIGNATURE_FILE)
    assert "covers no promotion.json" in refused(plain, ring_a)


def test_a_record_listing_other_files_is_refused(
    tmp_path: Path, key_files, ring_a: KeyRing
) -> None:
    """Signed by the right key, but the record's file list is not the signed manifest."""
    from model_signing import hashing, signing

    directory = write_model_dir(tmp_path / "d")
    bogus = record("1", files={"model.json": "0" * 64})
    (directory / RECORD_FILE).write_bytes(bogus.to_bytes())
    config = signing.Config().use_elliptic_key_signer(private_key=key_files["a"][0])
    config.set_hashing_config(hashing.Config().set_ignored_paths(paths=[SIGNATURE_FILE]))
    config.sign(directory, directory / SIGNATURE_FILE)
    assert "lists files other than the signed ones" in refused(directory, ring_a)


def test_malformed_records_are_refused_with_the_field() -> None:
    good = record("1").to_dict() | {"files": {"model.json": "a" * 64}}
    PromotionRecord.from_dict(good)
    for change, field in [
        ({"sequence": -1}, "sequence"),
        ({"sequence": True}, "sequence"),
        ({"version": ""}, "version"),
        ({"action": "delete"}, "action"),
        ({"format": "v0"}, "format"),
        ({"files": {"model.json": "xyz"}}, "model.json"),
    ]:
        with pytest.raises(SigningError, match=field):
            PromotionRecord.from_dict(good | change)


def test_private_key_never_in_logs_or_exceptions(
    tmp_path: Path, key_a: SigningKey, caplog: pytest.LogCaptureFixture, capsys
) -> None:
    pem = key_a.private_pem().decode()
    body = "".join(pem.splitlines()[1:-1])
    secret_lines = [line for line in pem.splitlines()[1:-1] if len(line) > 20]
    caplog.set_level(logging.DEBUG)
    messages = [repr(key_a), str(key_a)]
    directory = signed_champion(tmp_path / "ok", key_a, "1")
    flip_byte(directory / "model.json")
    for attempt in (
        lambda: verify(directory, KeyRing.of([key_a.public_key])),
        lambda: sign_directory(tmp_path / "missing", record("1"), key_a),
        lambda: SigningKey.from_pem(pem[:-40], where="HOUSING_SIGNING_KEY"),  # truncated key
        lambda: KeyRing.from_pem(pem),  # a private key pasted where public keys go
    ):
        with pytest.raises(SigningError) as info:
            attempt()
        messages.append(str(info.value))
        messages.append(repr(info.value.__cause__) + repr(info.value.__context__))
    out, err = capsys.readouterr()
    haystack = "\n".join([caplog.text, out, err, *messages])
    assert caplog.text  # signing did log
    assert body not in haystack.replace("\n", "")
    for line in secret_lines:
        assert line not in haystack


def test_a_signature_that_leaves_files_out_is_refused(
    tmp_path: Path, key_files, ring_a: KeyRing
) -> None:
    """Stricter than model-signing on purpose: a trusted key's signature that ignores
    ``model.skops`` would let that file be swapped, so only model.sig and git metadata may be
    left out (the signer never leaves out anything else)."""
    from model_signing import hashing, signing

    from housing.signing.digests import file_digests

    directory = write_model_dir(tmp_path / "d")
    files = file_digests(directory, ignore=[SIGNATURE_FILE, "model.skops"])
    (directory / RECORD_FILE).write_bytes(record("1", files=files).to_bytes())
    config = signing.Config().use_elliptic_key_signer(private_key=key_files["a"][0])
    ignore = hashing.Config().set_ignored_paths(paths=[SIGNATURE_FILE, "model.skops"])
    config.set_hashing_config(ignore).sign(directory, directory / SIGNATURE_FILE)
    assert "leaves out ['model.skops']" in refused(directory, ring_a)
