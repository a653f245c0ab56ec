"""Benchmark: import + verify of a signed champion, light verifier vs model-signing's own.

Each measurement is a fresh ``python`` process (what the API pays at start-up): it times
``import housing.signing`` and one ``verify()`` with perf_counter, and the parent times the
whole process. The same for ``import model_signing`` + its key verifier, and for an empty
``python -c pass`` as the baseline. The champion is a copy of ``--dir`` (e.g. ``models/``
with ``serving/``) signed with a fresh key, or a synthetic one of the real sizes
(model.skops 4.6 MB, a 3 MB booster text, 0.5 MB of arrays). Medians of ``--repeat`` runs.

    python bench/signing_verify.py [--dir models] [--repeat 7] [--json bench/results/signing.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIGHT = """
import time, sys
t0 = time.perf_counter()
from housing.signing import KeyRing, verify
t1 = time.perf_counter()
result = verify(sys.argv[1], KeyRing.from_files([sys.argv[2]]), expected={"version": "1"})
t2 = time.perf_counter()
assert result.signed
print(f"{t1 - t0:.6f} {t2 - t1:.6f}")
"""

MODEL_SIGNING = """
import time, sys
t0 = time.perf_counter()
from model_signing import verifying
t1 = time.perf_counter()
verifying.Config().use_elliptic_key_verifier(public_key=sys.argv[2]).verify(
    sys.argv[1], sys.argv[1] + "/model.sig")
t2 = time.perf_counter()
print(f"{t1 - t0:.6f} {t2 - t1:.6f}")
"""


def synthetic(directory: Path) -> None:
    rng = os.urandom
    (directory / "serving").mkdir(parents=True)
    (directory / "model.skops").write_bytes(rng(4_600_000))
    (directory / "serving" / "booster.txt").write_bytes(rng(3_000_000))
    for name in ("coords.npy", "targets.npy", "scaler.npy", "categories.npy"):
        (directory / "serving" / name).write_bytes(rng(130_000))
    (directory / "serving" / "manifest.json").write_text('{"format": "housing-serving"}\n')
    (directory / "model.json").write_text('{"name": "housing_price_model"}\n')


def run(code: str, *args: str) -> tuple[float, float, float]:
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    ).stdout.split()
    wall = time.perf_counter() - start
    return float(out[0]) if out else 0.0, float(out[1]) if out else 0.0, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="a model directory to sign (copied)")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    from housing.signing import PromotionRecord, SigningKey, now_utc, sign_directory
    from housing.signing.keys import write_keypair

    with tempfile.TemporaryDirectory() as tmp:
        champion = Path(tmp) / "champion"
        if args.dir:
            shutil.copytree(args.dir, champion, ignore=shutil.ignore_patterns("*.sig"))
        else:
            synthetic(champion)
        key = SigningKey.generate()
        _, public, _ = write_keypair(Path(tmp) / "keys", key)
        record = PromotionRecord(
            name="housing_price_model", version="1", alias="champion", data_md5="0" * 32,
            git_commit="0" * 40, decision="bench", sequence=1, timestamp=now_utc(), who="bench",
        )  # fmt: skip
        sign_directory(champion, record, key)
        size = sum(p.stat().st_size for p in champion.rglob("*") if p.is_file())

        rows = {"baseline": [], "light": [], "model_signing": []}
        for _ in range(args.repeat):
            rows["baseline"].append(run("pass"))
            rows["light"].append(run(LIGHT, str(champion), str(public)))
            rows["model_signing"].append(run(MODEL_SIGNING, str(champion), str(public)))

    def med(name: str, i: int) -> float:
        return statistics.median(r[i] for r in rows[name])

    results = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
        f"load {os.getloadavg()[0]:.1f}",
        "bundle_bytes": size,
        "repeat": args.repeat,
        "baseline_process_s": med("baseline", 2),
    }
    for name in ("light", "model_signing"):
        results[name] = {
            "import_s": med(name, 0),
            "verify_s": med(name, 1),
            "import_plus_verify_s": statistics.median(r[0] + r[1] for r in rows[name]),
            "process_s": med(name, 2),
        }
    print(
        f"bundle {size / 1e6:.1f} MB, median of {args.repeat} fresh processes, {results['machine']}"
    )
    print(f"{'':14} {'import':>8} {'verify':>8} {'both':>8} {'process':>8}")
    print(f"{'python -c pass':14} {'':>8} {'':>8} {'':>8} {results['baseline_process_s']:8.3f}")
    for name in ("light", "model_signing"):
        r = results[name]
        print(
            f"{name:14} {r['import_s']:8.3f} {r['verify_s']:8.3f} "
            f"{r['import_plus_verify_s']:8.3f} {r['process_s']:8.3f}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
