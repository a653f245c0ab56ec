"""Every command a user types fails in one shape: a non-zero exit, no traceback, one short line.

Each case runs the real command (the console scripts beside this interpreter, ``python -m``,
the scripts) as a subprocess with one bad argument or setting, offline and without a server:
a missing SQLite file, a closed port on 127.0.0.1, a path that is a directory. Usage errors
(exit 2) may add the usage line(s) and Click's ``Try ... --help`` line before the error line.
The stages are covered by their own tests (tests/stages).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PYTHON = sys.executable
# Variables a developer's shell may hold that would change what these commands read.
CLEARED_PREFIXES = ("MLFLOW_", "HOUSING_", "GCS_", "APP_")
CLEARED = {"STORAGE_EMULATOR_HOST", "PORT", "HOST", "API_URL", "MODEL_SOURCES", "LOG_LEVEL"}
USAGE = None  # a usage error: the usage line(s), maybe Click's "Try ... --help", the error
USAGE_LINES = 4  # argparse may wrap its usage line in two


def closed_port() -> int:
    """A loopback port nothing listens on (bound by the kernel, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


CASES = [
    # (argv, extra env, exit status, what the last line must name, lines before it or USAGE)
    pytest.param(
        [BIN / "housing-registry", "list", "--bogus"], {}, 2, "No such option: --bogus", USAGE,
        id="registry-unknown-option",
    ),
    pytest.param(
        [BIN / "housing-registry", "show", "--tracking-uri", "sqlite:///{tmp}/missing.db"],
        {}, 1, "no MLflow database at", 0,
        id="registry-missing-sqlite",
    ),
    pytest.param(
        # No MLFLOW_HTTP_REQUEST_* here: the CLI itself must not wait on MLflow's retries.
        [BIN / "housing-registry", "list", "--tracking-uri", "http://127.0.0.1:{port}"],
        {}, 1, "tracking server unreachable at http://127.0.0.1:", 0,
        id="registry-server-down",
    ),
    pytest.param(
        [BIN / "housing-sweep", "worker", "--storage", "{tmp}/j.log", "--study", "s",
         "--index", "abc"],
        {}, 2, "Invalid value for '--index'", USAGE,
        id="sweep-wrong-type",
    ),
    pytest.param(
        [BIN / "housing-sweep", "worker", "--storage", "{tmp}/j.log", "--study", "s",
         "--params", "{tmp}"],
        {}, 1, "Is a directory", 0,
        id="sweep-params-is-a-directory",
    ),
    pytest.param(
        # housing-sign's usage errors are one line and exit 1 too (docs/signing.md).
        [BIN / "housing-sign", "sign", "{tmp}", "--sequence", "x"],
        {}, 1, "invalid int value: 'x'", 0,
        id="sign-wrong-type",
    ),
    pytest.param(
        [BIN / "housing-sign", "verify", "{tmp}", "--key", "{tmp}/missing.pem"],
        {}, 1, "cannot read public key file", 0,
        id="sign-missing-key-file",
    ),
    pytest.param(
        [PYTHON, "-m", "serve"], {"PORT": "abc", "MODEL_SOURCES": "local,bogus"},
        1, "bad setting: PORT: ", 0,
        id="serve-bad-settings",
    ),
    pytest.param(
        [PYTHON, "-m", "app"], {"API_URL": "ftp://x"},
        1, "API_URL must start with http:// or https://", 0,
        id="app-bad-api-url",
    ),
    pytest.param(
        # Verified first ("signature ok: ..." is logged), then the endpoint is refused.
        [PYTHON, REPO_ROOT / "scripts" / "publish_model.py", "--champion-dir", "{champion}",
         "--bucket", "b", "--endpoint-url", "http://[bad"],
        {"HOUSING_VERIFY_KEY_FILES": "{champion}.pub"}, 2, "is not a URL", 1,
        id="publish-bad-endpoint",
    ),
    pytest.param(
        [PYTHON, REPO_ROOT / "scripts" / "pr_report.py", "--base", "HEAD",
         "--repo", "{tmp}/missing"],
        {}, 2, "--repo {tmp}/missing: not a directory", USAGE,
        id="pr-report-missing-repo",
    ),
    pytest.param(
        [PYTHON, REPO_ROOT / "scripts" / "pr_report.py", "--base", "HEAD", "--head", "HEAD",
         "--repo", REPO_ROOT, "-o", "{tmp}/a-file/report.md"],
        {}, 1, "cannot write {tmp}/a-file/report.md", 0,
        id="pr-report-unwritable-output",
    ),
]  # fmt: skip


@pytest.fixture(scope="module")
def signed_champion(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny signed champion directory and ``<dir>.pub``, the key that signed it."""
    from housing.signing import PromotionRecord, SigningKey
    from housing.signing.keys import public_pem
    from housing.signing.sign import now_utc, sign_directory

    champion = tmp_path_factory.mktemp("cli") / "champion"
    champion.mkdir()
    (champion / "model.json").write_text('{"name": "m"}\n')
    key = SigningKey.generate()
    record = PromotionRecord(
        name="m", version="1", alias="champion", data_md5="d", git_commit="c",
        decision="test", sequence=1, timestamp=now_utc(), who="test",
    )  # fmt: skip
    sign_directory(champion, record, key)
    Path(f"{champion}.pub").write_bytes(public_pem(key.public_key))
    return champion


@pytest.mark.parametrize(("argv", "env", "status", "needle", "before"), CASES)
def test_bad_input_fails_in_one_line_without_a_traceback(
    argv, env, status, needle, before, tmp_path, request
):
    (tmp_path / "a-file").write_text("not a directory\n")
    values = {"tmp": str(tmp_path), "port": str(closed_port())}
    if any("{champion}" in str(part) for part in [*argv, *env.values()]):
        values["champion"] = str(request.getfixturevalue("signed_champion"))
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(CLEARED_PREFIXES) and key not in CLEARED
    }
    proc = subprocess.run(
        [str(part).format(**values) for part in argv],
        cwd=tmp_path,  # no .env, params.yaml or mlflow.db of the checkout is read
        env=clean
        | {"PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": "80"}
        | {key: value.format(**values) for key, value in env.items()},
        capture_output=True,
        text=True,
        timeout=60,  # a command waiting on retries fails here
        check=False,
    )

    output = proc.stdout + proc.stderr
    assert proc.returncode == status, output
    assert "Traceback" not in output
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert lines and needle.format(**values) in lines[-1], proc.stderr
    if before is USAGE:
        assert lines[0].lower().startswith("usage:"), proc.stderr
        assert len(lines) <= USAGE_LINES, proc.stderr
    else:
        assert len(lines) == 1 + before, proc.stderr
