"""Signed champions: sign a model directory plus its promotion record, verify it cheaply.

Signing (pipeline, at promotion) uses OpenSSF model-signing with an EC P-256 key from the
environment; verification (the API, before deserialising anything) uses a light verifier of
the same format on ``cryptography`` alone. See docs/signing.md.

    record = PromotionRecord(name=..., version="7", alias="champion", ..., sequence=12)
    sign_directory(champion_dir, record, signing_key_from_env())         # pipeline
    result = verify(champion_dir, KeyRing.from_env(), expected={...}, min_sequence=11)  # API

Importing this package loads the standard library and ``cryptography`` only.
"""

from housing.signing.keys import (
    KeyConfigError,
    KeyRing,
    SigningKey,
    key_id,
    signing_key_from_env,
    write_keypair,
)
from housing.signing.record import (
    RECORD_FILE,
    SIGNATURE_FILE,
    PromotionRecord,
    RecordError,
    SigningError,
)
from housing.signing.verify import (
    VerificationError,
    VerificationResult,
    check_record,
    verify,
    verify_signature,
)

_SIGNING = ("now_utc", "sign_directory", "who", "build_champion")


def __getattr__(name: str) -> object:
    """The signing side (tempfile, getpass, datetime, model-signing) loads on first use."""
    if name in _SIGNING:
        from housing.signing import champion, sign

        return getattr(champion if name == "build_champion" else sign, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "RECORD_FILE",
    "SIGNATURE_FILE",
    "KeyConfigError",
    "KeyRing",
    "PromotionRecord",
    "RecordError",
    "SigningError",
    "SigningKey",
    "VerificationError",
    "VerificationResult",
    "build_champion",
    "check_record",
    "key_id",
    "now_utc",
    "sign_directory",
    "signing_key_from_env",
    "verify",
    "verify_signature",
    "who",
    "write_keypair",
]
