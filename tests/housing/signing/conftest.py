"""Key pairs and a signed champion directory for the signing tests (real keys, real signing)."""

from __future__ import annotations

from pathlib import Path

import pytest
from signing_support import signed_champion

from housing.signing import KeyRing, SigningKey, write_keypair


@pytest.fixture(scope="session")
def key_a() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="session")
def key_b() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="session")
def key_files(tmp_path_factory: pytest.TempPathFactory, key_a: SigningKey, key_b: SigningKey):
    """{'a': (private, public), 'b': (...)}: PEM files as keygen writes them."""
    root = tmp_path_factory.mktemp("keys")
    return {name: write_keypair(root / name, key)[:2] for name, key in (("a", key_a), ("b", key_b))}


@pytest.fixture(scope="session")
def ring_a(key_a: SigningKey) -> KeyRing:
    return KeyRing.of([key_a.public_key])


@pytest.fixture(scope="session")
def signed_v1(tmp_path_factory: pytest.TempPathFactory, key_a: SigningKey) -> Path:
    """Version 1 promoted to champion with sequence 4, signed by key A (read-only: copy it)."""
    return signed_champion(tmp_path_factory.mktemp("v1") / "champion", key_a, "1", sequence=4)


@pytest.fixture
def champion(tmp_path: Path, signed_v1: Path) -> Path:
    """A private copy of the signed v1 champion, free to tamper with."""
    from signing_support import copy_dir

    return copy_dir(signed_v1, tmp_path / "champion")
