"""``python -m housing.signing``: keygen, sign then verify a directory; one-line errors, exit 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from signing_support import DATA_MD5, MODEL_NAME, flip_byte, write_model_dir

from housing.signing import RECORD_FILE, SIGNATURE_FILE


def run(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HOUSING_")}
    return subprocess.run(
        [sys.executable, "-m", "housing.signing", *map(str, args)],
        capture_output=True,
        text=True,
        env=clean | (env or {}),
        timeout=120,
        check=False,
    )


def one_line_error(proc: subprocess.CompletedProcess, needle: str) -> None:
    assert proc.returncode == 1, proc
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for name in ("a", "b"):
        directory = tmp_path_factory.mktemp(f"keys_{name}")
        proc = run("keygen", "--out", directory)
        assert proc.returncode == 0, proc.stderr
        assert "key id" in proc.stdout and "0600" in proc.stdout
        out[name] = directory
    return out


def sign(directory: Path, key_dir: Path, *extra: str) -> subprocess.CompletedProcess:
    return run(
        "sign",
        directory,
        "--version",
        "7",
        "--sequence",
        "12",
        "--decision",
        "promoted by the paired gate",
        "--git-commit",
        "b" * 40,
        *extra,
        env={"HOUSING_SIGNING_KEY_FILE": str(key_dir / "signing-key.pem")},
    )


def test_sign_then_verify(tmp_path: Path, keys: dict[str, Path]) -> None:
    directory = write_model_dir(tmp_path / "champion")
    proc = sign(directory, keys["a"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1 and f"{MODEL_NAME} v7 @champion, sequence 12" in proc.stdout
    assert (directory / RECORD_FILE).is_file() and (directory / SIGNATURE_FILE).is_file()
    assert DATA_MD5 in (directory / RECORD_FILE).read_text()  # defaulted from model.json

    public = keys["a"] / "signing-key.pub"
    proc = run(
        "verify", directory, "--key", public, "--expect-version", "7", "--min-sequence", "12"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"ok {directory}: {MODEL_NAME} v7 @champion, promote #12")
    # Keys from the environment (rotation: both public keys trusted).
    both = ",".join(str(keys[n] / "signing-key.pub") for n in ("a", "b"))
    proc = run("verify", directory, env={"HOUSING_VERIFY_KEY_FILES": both})
    assert proc.returncode == 0, proc.stderr


def test_verify_failures_are_one_line_and_exit_1(tmp_path: Path, keys: dict[str, Path]) -> None:
    directory = write_model_dir(tmp_path / "champion")
    assert sign(directory, keys["a"]).returncode == 0
    public_a, public_b = (keys[n] / "signing-key.pub" for n in ("a", "b"))

    one_line_error(run("verify", directory, "--key", public_b), "not a trusted key")
    one_line_error(
        run("verify", directory, "--key", public_a, "--expect-version", "8"), "expected '8'"
    )
    one_line_error(
        run("verify", directory, "--key", public_a, "--min-sequence", "13"), "older than"
    )
    one_line_error(run("verify", directory), "no verification key")
    flip_byte(directory / "serving" / "booster.txt")
    one_line_error(run("verify", directory, "--key", public_a), "serving/booster.txt")
    (directory / SIGNATURE_FILE).unlink()
    one_line_error(run("verify", directory, "--key", public_a), "unsigned bundle")
    one_line_error(run("verify", tmp_path / "nowhere", "--key", public_a), "is not a directory")


def test_sign_failures_are_one_line_and_exit_1(tmp_path: Path, keys: dict[str, Path]) -> None:
    directory = write_model_dir(tmp_path / "champion")
    no_key = run("sign", directory, "--version", "1", "--sequence", "1", "--decision", "x")
    one_line_error(no_key, "no signing key")
    one_line_error(sign(tmp_path / "missing", keys["a"]), "is not a directory")
    one_line_error(sign(directory, keys["a"], "--extra", "{nope"), "--extra is not JSON")
    one_line_error(run("sign", directory, "--sequence", "x"), "invalid int value")
    bad_key = run(
        "sign", directory, "--version", "1", "--sequence", "1", "--decision", "x",
        env={"HOUSING_SIGNING_KEY": "-----BEGIN PRIVATE KEY-----\nsecretsecret\n"},
    )  # fmt: skip
    one_line_error(bad_key, "HOUSING_SIGNING_KEY: not an unencrypted PEM private key")
    assert "secretsecret" not in bad_key.stderr
    assert not (directory / SIGNATURE_FILE).exists()


def test_keygen_refuses_to_overwrite(keys: dict[str, Path]) -> None:
    one_line_error(run("keygen", "--out", keys["a"]), "refusing to overwrite")
