"""Benchmark of the data contract's vectorised checks (``Contract.violations_array``).

Prices nothing: it measures what validation adds to a request, on real districts drawn
from the data mirror (all valid, so every row goes through every bound, rule and the
point-in-polygon test), for batches of 1, 100 and 1,000 rows, and a 1,000-row batch of
districts moved outside California (the distance-to-outline path). Median of repeated
runs, in process, after warm-up. Target: a 1,000-row batch well under 1 ms.

    python bench/contract_check.py [--contract data/contract.json] [--mirror PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MIRROR = Path(
    os.environ.get("HOUSING_DATA_MIRROR", ROOT.parent / "shared" / "data" / "housing.csv")
)


def median_ms(fn, *, repeat: int = 300) -> float:
    for _ in range(20):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contract", type=Path, default=ROOT / "data" / "contract.json")
    parser.add_argument("--mirror", type=Path, default=DEFAULT_MIRROR)
    args = parser.parse_args()

    import pandas as pd

    from housing.contract import NUMERIC_FEATURES, Contract

    contract = Contract.from_dict(json.loads(args.contract.read_text()))
    real = pd.read_csv(args.mirror)[list(NUMERIC_FEATURES)].to_numpy(float)
    rng = np.random.default_rng(0)
    batch = real[rng.choice(len(real), 1000, replace=False)]
    outside = batch.copy()  # level with Reno, east of 120 W: Nevada, within the lon range
    outside[:, 0] = rng.uniform(-119.9, -114.5, len(outside))
    outside[:, 1] = 39.5

    rows = []
    for label, x in (
        ("1 row", batch[:1]),
        ("100 rows", batch[:100]),
        ("1,000 rows", batch),
        ("1,000 rows outside", outside),
    ):
        found = contract.violations_array(x, limit=50)
        ms = median_ms(lambda x=x: contract.violations_array(x, limit=50))
        rows.append((label, ms, found.total))
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpu(s), "
        f"load {os.getloadavg()[0]:.1f}, python {platform.python_version()}"
    )
    print(f"{'batch':<20}{'median ms':>12}{'violations':>12}")
    for label, ms, total in rows:
        print(f"{label:<20}{ms:>12.3f}{total:>12}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
