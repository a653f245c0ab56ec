"""The verifier's import stays light: the API imports it on its start-up path."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("model_signing", "sigstore", "OpenSSL", "in_toto_attestation", "numpy", "yaml", "mlflow")


def test_importing_the_verifier_loads_no_heavy_module() -> None:
    code = (
        "import sys\n"
        "from housing.signing import KeyRing, verify, VerificationError\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert proc.stdout.strip() == ""
