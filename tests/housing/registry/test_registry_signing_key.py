"""Where a promotion's key comes from: the environment, else the workspace's development key
in .keys/, else a refusal unless HOUSING_ALLOW_UNSIGNED=1 (which also skips .keys/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from housing.registry import RegistryError
from housing.registry.signed import signing_key as find_key
from housing.signing import write_keypair


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".dvc" / "tmp" / "exps" / "tmpcopy").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    return tmp_path


def test_no_key_anywhere_is_refused_with_one_line_naming_every_way_out(workspace):
    with pytest.raises(RegistryError) as err:
        find_key({})
    message = str(err.value)
    assert "\n" not in message
    for way in ("HOUSING_SIGNING_KEY", "make install", "HOUSING_ALLOW_UNSIGNED=1"):
        assert way in message


def test_the_development_key_is_found_in_the_workspace_and_from_an_experiment_copy(
    workspace, monkeypatch
):
    _private, _public, kid = write_keypair(workspace / ".keys")
    assert find_key({}).key_id == kid
    monkeypatch.chdir(workspace / ".dvc" / "tmp" / "exps" / "tmpcopy")  # dvc exp run --temp
    assert find_key({}).key_id == kid


def test_the_environment_comes_first(workspace, signing_key_pem):
    write_keypair(workspace / ".keys")
    pem, kid = signing_key_pem
    assert find_key({"HOUSING_SIGNING_KEY": pem}).key_id == kid


def test_allow_unsigned_skips_the_development_key_but_not_the_environment(
    workspace, signing_key_pem
):
    write_keypair(workspace / ".keys")
    assert find_key({"HOUSING_ALLOW_UNSIGNED": "1"}) is None
    pem, kid = signing_key_pem
    key = find_key({"HOUSING_ALLOW_UNSIGNED": "1", "HOUSING_SIGNING_KEY": pem})
    assert key.key_id == kid


def test_a_bad_allow_unsigned_value_is_refused(workspace):
    with pytest.raises(RegistryError, match="HOUSING_ALLOW_UNSIGNED must be 1 or 0"):
        find_key({"HOUSING_ALLOW_UNSIGNED": "maybe"})


def test_an_unreadable_development_key_names_the_file_not_its_text(workspace):
    (workspace / ".keys").mkdir()
    (workspace / ".keys" / "signing-key.pem").write_text("not a key")
    with pytest.raises(RegistryError, match="development key") as err:
        find_key({})
    assert "not a key" not in str(err.value)


@pytest.fixture
def signing_key_pem(signing_key) -> tuple[str, str]:
    return signing_key.private_pem().decode(), signing_key.key_id
