"""DVC stage entry points: ``python -m stages.<name>``; the DAG lives in dvc.yaml.

Importing this package pins OpenBLAS's compute kernel to ``Haswell`` (AVX2) on x86-64,
before any stage imports numpy. OpenBLAS picks its kernels by CPU at load time, and the
kernels round differently: the iterative imputer's linear algebra gave other bits on an
AVX-512 Intel Xeon (``SkylakeX`` kernels) than on an AMD EPYC (``Zen``/``Haswell``), so
``dvc repro --force`` reproduced the committed ``dvc.lock`` only on the vendor that wrote it
(measured 2026-12-02 on the imputed table ``data/preprocessed/train.parquet``, an output since
removed: md5 4cfd4a07… with SkylakeX,
SapphireRapids or Cooperlake forced on the EPYC, b5d9c029… with Haswell or the default).
Every x86-64 CPU since 2013 runs the Haswell kernels, so the lock is now written with them
everywhere.

It also turns off numpy's AVX-512 dispatch targets (``NPY_DISABLE_CPU_FEATURES``). numpy
picks its ``log``, ``log1p``, ``exp`` and ``expm1`` loops by CPU at import, and the AVX-512
ones round differently from the AVX2 and baseline ones (measured 2026-12-03 on an AMD EPYC
family 25 with AVX-512, numpy 2.4.6: all four gave other bits over a million prices, the
same bits as the AVX2 path once ``X86_V4`` was disabled; ``sqrt``, ``sum``, ``mean`` and
``std`` agreed). The target is modelled in log space, so a lock written on an AVX2 machine
did not reproduce on that one: the random forest's fold SD in its sixth digit and the
model's bytes. Naming a target the CPU lacks is a no-op, so the setting is safe everywhere.

And it pins the native thread pools (OpenMP, OpenBLAS, MKL) to one thread each, whatever
the shell says. The pools' sizes change the order of floating-point reductions (LightGBM's
histograms, scikit-learn's OpenMP loops), and an OpenMP runtime reads ``OMP_NUM_THREADS``
once, when it loads: ``threadpoolctl`` in ``housing.stage.run`` limits only the calling
thread, not the threads that fit the CV folds side by side. A cold ``dvc repro --force``
typed without the Makefile's variables changed ``reports/select/leaderboard.csv`` on a
2-core Intel Xeon (LightGBM's CV score 42,092.4 against 42,069.6; issue 23). The stages'
parallelism is their own (folds, sweep workers), which does not change the numbers.

Import-time side effects on purpose: all must precede numpy's first import.
"""

import os
import platform

# numpy's AVX-512 dispatch targets (numpy 2.x names); the baseline and AVX2 paths agree.
NUMPY_DISABLED_TARGETS = "X86_V4 AVX512_ICL AVX512_SPR"

# Native thread pools, one thread each (see above); the Makefile's values, forced.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

for _var in THREAD_VARS:
    os.environ[_var] = "1"

if platform.machine().lower() in {"x86_64", "amd64"}:
    os.environ["OPENBLAS_CORETYPE"] = "Haswell"
    os.environ["NPY_DISABLE_CPU_FEATURES"] = NUMPY_DISABLED_TARGETS
