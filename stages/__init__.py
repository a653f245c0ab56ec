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
everywhere. An import-time side effect on purpose: it must precede numpy's first import.
"""

import os
import platform

if platform.machine().lower() in {"x86_64", "amd64"}:
    os.environ["OPENBLAS_CORETYPE"] = "Haswell"
