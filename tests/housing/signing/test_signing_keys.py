"""Keys: keygen writes a 0600 private key atomically, rings load several public keys, env."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from housing.signing import KeyConfigError, KeyRing, SigningKey, key_id, signing_key_from_env
from housing.signing.keys import PRIVATE_KEY_FILE, PUBLIC_KEY_FILE, public_pem, write_keypair


def test_keygen_writes_a_private_key_readable_by_its_owner_only(tmp_path: Path) -> None:
    private, public, kid = write_keypair(tmp_path / "keys")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert (private.name, public.name) == (PRIVATE_KEY_FILE, PUBLIC_KEY_FILE)
    key = SigningKey.from_pem(private.read_bytes(), where="test")
    assert key.key_id == kid == key_id(KeyRing.from_files([public]).keys[kid])
    assert key.public_key.curve.name == "secp256r1"
    assert [p.name for p in (tmp_path / "keys").iterdir() if p.name.startswith(".")] == []


def test_keygen_refuses_to_overwrite_unless_forced(tmp_path: Path) -> None:
    _, _, first = write_keypair(tmp_path)
    with pytest.raises(KeyConfigError, match="exists; refusing to overwrite"):
        write_keypair(tmp_path)
    _, _, second = write_keypair(tmp_path, force=True)
    assert first != second


def test_a_ring_holds_every_pem_block_from_text_and_files(tmp_path: Path) -> None:
    keys = [SigningKey.generate() for _ in range(3)]
    pems = [public_pem(k.public_key).decode() for k in keys]
    (tmp_path / "c.pub").write_text(pems[2])
    ring = KeyRing.from_env(
        {
            "HOUSING_VERIFY_KEYS": pems[0] + "\n" + pems[1],
            "HOUSING_VERIFY_KEY_FILES": f" {tmp_path / 'c.pub'} ,",
        }
    )
    assert set(ring.ids) == {k.key_id for k in keys}
    assert len(KeyRing.from_env({"HOUSING_VERIFY_KEYS": "  "})) == 0
    assert len(KeyRing.from_env({})) == 0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HOUSING_VERIFY_KEYS": "not a key"}, "HOUSING_VERIFY_KEYS: no '-----BEGIN PUBLIC KEY"),
        (
            {"HOUSING_VERIFY_KEYS": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"},
            "public key #1 is not a valid EC",
        ),
        (
            {"HOUSING_VERIFY_KEY_FILES": "/nonexistent/k.pub"},
            "cannot read public key file /nonexistent",
        ),
    ],
)
def test_broken_verification_keys_fail_loudly(env: dict[str, str], message: str) -> None:
    """Keys configured but unusable must never fall back to 'unsigned allowed'."""
    with pytest.raises(KeyConfigError, match=message):
        KeyRing.from_env(env)


def test_an_rsa_or_ed25519_key_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pem = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(KeyConfigError, match="is not a valid EC"):
        KeyRing.from_pem(pem)


@pytest.mark.parametrize("curve", ["SECP256R1", "SECP384R1", "SECP521R1"])
def test_public_keys_read_and_write_exactly_as_cryptography_does(curve: str) -> None:
    """Our SPKI parser/writer (which spares the API cryptography's serialization import)
    yields cryptography's PEM bytes, hence model-signing's key hint."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    public = ec.generate_private_key(getattr(ec, curve)()).public_key()
    reference = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert public_pem(public) == reference
    ring = KeyRing.from_pem(reference)
    (kid,) = ring.ids
    import hashlib

    assert kid == hashlib.sha256(reference).hexdigest()
    assert ring.keys[kid].public_numbers() == public.public_numbers()


def test_compressed_or_off_curve_points_are_refused() -> None:
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    compressed = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    der = bytearray(base64.b64decode(b"".join(compressed.splitlines()[1:-1])))
    der[-1] ^= 0x01  # the point leaves the curve
    bad = (
        b"-----BEGIN PUBLIC KEY-----\n"
        + base64.b64encode(bytes(der))
        + b"\n-----END PUBLIC KEY-----\n"
    )
    with pytest.raises(KeyConfigError, match="is not a valid EC"):
        KeyRing.from_pem(bad)
    short = der[:27] + b"\x02" + der[28:60]
    bad = (
        b"-----BEGIN PUBLIC KEY-----\n"
        + base64.b64encode(bytes(short))
        + b"\n-----END PUBLIC KEY-----\n"
    )
    with pytest.raises(KeyConfigError, match="is not a valid EC"):
        KeyRing.from_pem(bad)


def test_the_signing_key_comes_from_the_environment(tmp_path: Path) -> None:
    private, _, kid = write_keypair(tmp_path)
    pem = private.read_text()
    assert signing_key_from_env({}) is None
    assert signing_key_from_env({"HOUSING_SIGNING_KEY": pem}).key_id == kid
    assert signing_key_from_env({"HOUSING_SIGNING_KEY_FILE": str(private)}).key_id == kid
    with pytest.raises(KeyConfigError, match="set only one"):
        signing_key_from_env({"HOUSING_SIGNING_KEY": pem, "HOUSING_SIGNING_KEY_FILE": str(private)})
    with pytest.raises(KeyConfigError, match="HOUSING_SIGNING_KEY: not an unencrypted PEM") as info:
        signing_key_from_env({"HOUSING_SIGNING_KEY": pem.replace("A", "B", 5)[:-30]})
    assert pem.splitlines()[1] not in str(info.value)
    with pytest.raises(KeyConfigError, match="HOUSING_SIGNING_KEY_FILE: cannot read"):
        signing_key_from_env({"HOUSING_SIGNING_KEY_FILE": str(tmp_path / "nope.pem")})
    assert "PRIVATE" not in repr(SigningKey.from_pem(pem, where="x"))
