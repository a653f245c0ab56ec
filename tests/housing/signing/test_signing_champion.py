"""build_champion: a signed copy of the bundle, swapped in whole; a failure keeps the old one."""

from __future__ import annotations

from pathlib import Path

import pytest
from signing_support import flip_byte, record, write_model_dir

from housing.signing import (
    RECORD_FILE,
    SIGNATURE_FILE,
    KeyRing,
    SigningError,
    SigningKey,
    VerificationError,
    build_champion,
    verify,
)


def test_a_champion_is_a_signed_copy_of_the_bundle(
    tmp_path: Path, key_a: SigningKey, ring_a: KeyRing
) -> None:
    models = write_model_dir(tmp_path / "models")
    (models / "best_params.yaml").write_text("not part of the bundle\n")
    champion = tmp_path / "published" / "champion"
    signed = build_champion(models, champion, record("3", sequence=7), key_a)
    assert sorted(p.name for p in champion.iterdir()) == sorted(
        ["model.json", "model.skops", "serving", RECORD_FILE, SIGNATURE_FILE]
    )
    result = verify(champion, ring_a, expected={"version": "3"}, min_sequence=7)
    assert result.record == signed
    assert [p.name for p in champion.parent.iterdir()] == ["champion"]  # no staging left over


def test_a_new_champion_replaces_the_old_and_a_failure_keeps_it(
    tmp_path: Path, key_a: SigningKey, ring_a: KeyRing
) -> None:
    champion = tmp_path / "champion"
    build_champion(write_model_dir(tmp_path / "v1"), champion, record("1", sequence=1), key_a)
    build_champion(
        write_model_dir(tmp_path / "v2", seed=2), champion, record("2", sequence=2), key_a
    )
    assert verify(champion, ring_a).record.version == "2"

    broken = write_model_dir(tmp_path / "v3", seed=3)
    (broken / "model.json").unlink()
    with pytest.raises(SigningError, match=r"model\.json not found"):
        build_champion(broken, champion, record("3", sequence=3), key_a)
    assert verify(champion, ring_a).record.version == "2"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_without_a_key_the_champion_is_unsigned_but_integrity_checked(
    tmp_path: Path, ring_a: KeyRing, caplog: pytest.LogCaptureFixture
) -> None:
    champion = tmp_path / "champion"
    build_champion(write_model_dir(tmp_path / "models"), champion, record("4", sequence=3), None)
    assert "UNSIGNED" in caplog.text and not (champion / SIGNATURE_FILE).exists()
    result = verify(champion, KeyRing.of([]), expected={"version": "4"})
    assert not result.signed and result.record.version == "4"
    # Verification on: an unsigned champion is refused.
    with pytest.raises(VerificationError, match="unsigned bundle"):
        verify(champion, ring_a)
    # No keys: the record still has to describe the files, and the expected version.
    with pytest.raises(VerificationError, match="expected '5'"):
        verify(champion, KeyRing.of([]), expected={"version": "5"})
    flip_byte(champion / "serving" / "booster.txt")
    with pytest.raises(VerificationError, match=r"serving/booster\.txt was modified"):
        verify(champion, KeyRing.of([]))
