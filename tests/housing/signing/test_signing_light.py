"""The verifier stays light: the API imports and runs it on its start-up path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HEAVY = (
    "model_signing",
    "sigstore",
    "OpenSSL",
    "in_toto_attestation",
    "numpy",
    "yaml",
    "mlflow",
    "cryptography.hazmat.primitives.serialization",  # ~80 ms: we parse SPKI ourselves
)


def test_importing_and_verifying_loads_no_heavy_module(signed_v1: Path, key_files) -> None:
    code = (
        "import sys\n"
        "from housing.signing import KeyRing, verify\n"
        "result = verify(sys.argv[1], KeyRing.from_files([sys.argv[2]]), expected={'version': 1})\n"
        "assert result.signed, result\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(signed_v1), str(key_files["a"][1])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
