"""Keys: the private signing key from the environment, public verification keys from settings.

- Private key (pipeline, promotion only): ``HOUSING_SIGNING_KEY`` holds the PEM text, or
  ``HOUSING_SIGNING_KEY_FILE`` names a PEM file. Its text never reaches a log line or an
  exception message: every failure here says *which variable* is wrong, not what it holds.
- Public keys (the API, every verifier): one or more PEM blocks in ``HOUSING_VERIFY_KEYS``
  and/or PEM files listed (comma-separated) in ``HOUSING_VERIFY_KEY_FILES``. Several keys make
  rotation possible: sign with the new key, publish both public keys, retire the old one.
- A key's id is the sha256 of its SubjectPublicKeyInfo PEM, the "hint" model-signing writes
  into each signature, so a verifier picks the right key without trying them all.

Imports the standard library and ``cryptography`` only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from housing.signing.record import SigningError

SIGNING_KEY_ENV = "HOUSING_SIGNING_KEY"
SIGNING_KEY_FILE_ENV = "HOUSING_SIGNING_KEY_FILE"
VERIFY_KEYS_ENV = "HOUSING_VERIFY_KEYS"
VERIFY_KEY_FILES_ENV = "HOUSING_VERIFY_KEY_FILES"
PRIVATE_KEY_FILE = "signing-key.pem"
PUBLIC_KEY_FILE = "signing-key.pub"
CURVES = ("secp256r1", "secp384r1", "secp521r1")  # those model-signing accepts
# DER SubjectPublicKeyInfo of a named-curve EC key is a fixed prefix + the uncompressed point
# (RFC 5480). Parsing it here spares the API `cryptography...serialization` (~80 ms to import
# here, most of it its SSH module); tests check these bytes against cryptography's own.
_SPKI: dict[str, tuple[bytes, int, type[ec.EllipticCurve]]] = {
    "secp256r1": (
        bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200"),
        65,
        ec.SECP256R1,
    ),
    "secp384r1": (
        bytes.fromhex("3076301006072a8648ce3d020106052b81040022036200"),
        97,
        ec.SECP384R1,
    ),
    "secp521r1": (
        bytes.fromhex("30819b301006072a8648ce3d020106052b8104002303818600"),
        133,
        ec.SECP521R1,
    ),
}
_PEM_HEADER, _PEM_FOOTER = "-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----"
_PEM_BLOCK = re.compile(rb"-----BEGIN PUBLIC KEY-----\s.*?-----END PUBLIC KEY-----", re.DOTALL)


class KeyConfigError(SigningError):
    """A key is missing, unreadable or of a kind we do not use."""


def _spki_der(public_key: ec.EllipticCurvePublicKey) -> bytes:
    prefix, point_len, _ = _SPKI[_check_curve(public_key, "public key").curve.name]
    numbers = public_key.public_numbers()
    size = (point_len - 1) // 2
    return prefix + b"\x04" + numbers.x.to_bytes(size, "big") + numbers.y.to_bytes(size, "big")


def _from_spki_der(der: bytes) -> ec.EllipticCurvePublicKey:
    for prefix, point_len, curve in _SPKI.values():
        if der.startswith(prefix) and len(der) == len(prefix) + point_len:
            # Raises ValueError for a point that is not on the curve.
            return ec.EllipticCurvePublicKey.from_encoded_point(curve(), der[len(prefix) :])
    raise ValueError("not a named-curve P-256/P-384/P-521 SubjectPublicKeyInfo")


def public_pem(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM, byte for byte as ``cryptography`` writes it (64-char lines)."""
    b64 = base64.b64encode(_spki_der(public_key)).decode("ascii")
    lines = [b64[i : i + 64] for i in range(0, len(b64), 64)]
    return "\n".join([_PEM_HEADER, *lines, _PEM_FOOTER, ""]).encode("ascii")


def load_public_pem(block: bytes) -> ec.EllipticCurvePublicKey:
    """One ``PUBLIC KEY`` PEM block -> an EC public key (ValueError if it is not one)."""
    text = block.decode("ascii")
    body = text.split(_PEM_HEADER, 1)[1].split(_PEM_FOOTER, 1)[0]
    try:
        der = base64.b64decode("".join(body.split()), validate=True)
    except binascii.Error as exc:
        raise ValueError("not base64") from exc
    return _from_spki_der(der)


def key_id(public_key: ec.EllipticCurvePublicKey) -> str:
    """sha256 (hex) of the SubjectPublicKeyInfo PEM: model-signing's ``publicKey.hint``."""
    return hashlib.sha256(public_pem(public_key)).hexdigest()


def _check_curve(public_key: object, where: str) -> ec.EllipticCurvePublicKey:
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise KeyConfigError(
            f"{where}: not an elliptic-curve key (model-signing signs with EC keys)"
        )
    if public_key.curve.name not in CURVES:
        raise KeyConfigError(f"{where}: unsupported curve {public_key.curve.name}")
    return public_key


@dataclass(frozen=True)
class KeyRing:
    """The public keys a verifier trusts, by key id (empty: verification is off)."""

    keys: Mapping[str, ec.EllipticCurvePublicKey]

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[tuple[str, ec.EllipticCurvePublicKey]]:
        return iter(self.keys.items())

    def get(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        return self.keys.get(kid)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(self.keys)

    @classmethod
    def of(cls, public_keys: Iterable[ec.EllipticCurvePublicKey]) -> KeyRing:
        return cls({key_id(k): _check_curve(k, "public key") for k in public_keys})

    @classmethod
    def from_pem(cls, pem: str | bytes, *, where: str = VERIFY_KEYS_ENV) -> KeyRing:
        """Every ``PUBLIC KEY`` PEM block in ``pem`` (blank text: an empty ring)."""
        data = pem.encode("utf-8") if isinstance(pem, str) else pem
        if not data.strip():
            return cls({})
        blocks = _PEM_BLOCK.findall(data)
        if not blocks:
            raise KeyConfigError(f"{where}: no '-----BEGIN PUBLIC KEY-----' block found")
        keys = []
        for i, block in enumerate(blocks, 1):
            try:
                loaded = load_public_pem(block)
            except (ValueError, UnicodeDecodeError):
                raise KeyConfigError(
                    f"{where}: public key #{i} is not a valid EC (P-256/384/521) public key"
                ) from None
            keys.append(loaded)
        return cls.of(keys)

    @classmethod
    def from_files(cls, paths: Iterable[str | os.PathLike[str]]) -> KeyRing:
        merged: dict[str, ec.EllipticCurvePublicKey] = {}
        for path in paths:
            path = Path(path)
            try:
                text = path.read_bytes()
            except OSError as exc:
                raise KeyConfigError(
                    f"cannot read public key file {path}: {exc.strerror}"
                ) from None
            ring = cls.from_pem(text, where=str(path))
            if not len(ring):
                raise KeyConfigError(f"public key file {path} is empty")
            merged.update(ring.keys)
        return cls(merged)

    @classmethod
    def from_settings(
        cls, pem: str | None = None, files: Iterable[str | os.PathLike[str]] = ()
    ) -> KeyRing:
        """Union of the PEM text and the files (what the API's settings hold)."""
        ring = dict(cls.from_pem(pem or "").keys)
        ring.update(cls.from_files(files).keys)
        return cls(ring)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KeyRing:
        """``HOUSING_VERIFY_KEYS`` (PEM text) plus ``HOUSING_VERIFY_KEY_FILES`` (a,b,c)."""
        env = os.environ if environ is None else environ
        files = [p.strip() for p in env.get(VERIFY_KEY_FILES_ENV, "").split(",") if p.strip()]
        return cls.from_settings(env.get(VERIFY_KEYS_ENV), files)


class SigningKey:
    """A private EC key; its repr and str never show the key material."""

    __slots__ = ("_key",)

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        _check_curve(private_key.public_key(), "signing key")
        self._key = private_key

    def __repr__(self) -> str:
        return f"SigningKey(id={self.key_id[:12]}…)"

    __str__ = __repr__

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._key.public_key()

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)

    def private_pem(self) -> bytes:
        """PKCS#8 PEM, unencrypted: handed to model-signing, never written to a log."""
        from cryptography.hazmat.primitives import serialization

        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @classmethod
    def from_pem(cls, pem: str | bytes, *, where: str) -> SigningKey:
        from cryptography.hazmat.primitives import serialization

        data = pem.encode("utf-8") if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError):
            # cryptography's message never holds the key, but say only where it came from.
            raise KeyConfigError(f"{where}: not an unencrypted PEM private key") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise KeyConfigError(f"{where}: not an elliptic-curve private key")
        return cls(key)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))


def signing_key_from_env(environ: Mapping[str, str] | None = None) -> SigningKey | None:
    """The private key from HOUSING_SIGNING_KEY or HOUSING_SIGNING_KEY_FILE (None: unset)."""
    env = os.environ if environ is None else environ
    text = env.get(SIGNING_KEY_ENV, "")
    path = env.get(SIGNING_KEY_FILE_ENV, "").strip()
    if text.strip() and path:
        raise KeyConfigError(f"set only one of {SIGNING_KEY_ENV} and {SIGNING_KEY_FILE_ENV}")
    if text.strip():
        return SigningKey.from_pem(text, where=SIGNING_KEY_ENV)
    if path:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise KeyConfigError(
                f"{SIGNING_KEY_FILE_ENV}: cannot read {path}: {exc.strerror}"
            ) from None
        return SigningKey.from_pem(data, where=f"{SIGNING_KEY_FILE_ENV} ({path})")
    return None


def _write_atomic(dest: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``dest`` via a temp file created with ``mode`` (never wider)."""
    import tempfile  # keygen only: keep the verifier's import light

    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        Path(tmp).replace(dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_keypair(
    out_dir: str | os.PathLike[str], key: SigningKey | None = None, *, force: bool = False
) -> tuple[Path, Path, str]:
    """Write ``signing-key.pem`` (0600) and ``signing-key.pub`` atomically; return paths and id.

    Refuses to overwrite an existing key unless ``force``: losing a private key means
    re-signing the champion and re-deploying every verifier's public key.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out / PRIVATE_KEY_FILE, out / PUBLIC_KEY_FILE
    if not force:
        for path in (private_path, public_path):
            if path.exists():
                raise KeyConfigError(f"{path} exists; refusing to overwrite a key (use --force)")
    key = key or SigningKey.generate()
    _write_atomic(public_path, public_pem(key.public_key), 0o644)
    _write_atomic(private_path, key.private_pem(), 0o600)
    return private_path, public_path, key.key_id
