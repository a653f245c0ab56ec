"""``stages/__init__.py``: the stages' numerics do not depend on which x86-64 CPU runs them.

Each check runs a fresh interpreter (the settings must precede numpy's first import) and
compares what a stage's numpy computes with numpy's portable baseline loops (every dispatch
target above X86_V2 turned off). On an AVX-512 machine without the package's setting, the
``log``/``exp`` family differs from the baseline in its last bits (measured: see the
package docstring); on an AVX2 machine both sides run the same loops.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
X86 = platform.machine().lower() in {"x86_64", "amd64"}
BITS = """
import hashlib, numpy as np
x = np.random.default_rng(0).uniform(1e4, 5e5, 200_000)
for f in (np.log, np.log1p, np.sqrt):
    print(f.__name__, hashlib.md5(f(x).tobytes()).hexdigest())
for f in (np.exp, np.expm1):
    print(f.__name__, hashlib.md5(f(np.log(x)).tobytes()).hexdigest())
"""


def _run(code: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k != "NPY_DISABLE_CPU_FEATURES"}
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={**base, "PYTHONPATH": str(REPO_ROOT), **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout


@pytest.mark.skipif(not X86, reason="the settings apply to x86-64 only")
def test_a_stage_computes_numpys_baseline_bits():
    staged = _run("import stages\n" + BITS)
    baseline = _run(BITS, NPY_DISABLE_CPU_FEATURES="X86_V3 X86_V4 AVX512_ICL AVX512_SPR")
    assert staged == baseline


@pytest.mark.skipif(not X86, reason="the settings apply to x86-64 only")
def test_a_stage_sees_no_avx512_dispatch_and_the_haswell_blas_kernels():
    out = _run(
        "import os, stages\n"
        "from numpy._core._multiarray_umath import __cpu_features__ as f\n"
        "print(f['X86_V4'], f['AVX512_SKX'], os.environ['OPENBLAS_CORETYPE'])"
    )
    assert out.split() == ["False", "False", "Haswell"]
