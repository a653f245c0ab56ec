"""(b) The model's own time: the serving bundle's numpy path, in process, after warm-up.

Imported by bench/serve_load.py; run alone, it times one or more model directories (each
with ``serving/`` and ``model.json``) on the same 100 real districts and prints the cost per
tree, from which the serving budget's rounds cap in ``params.yaml`` is derived:

    python bench/model_time.py models [OTHER_MODEL_DIR ...] [--repeats 400]
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from housing.contract import CATEGORICAL_FEATURE, NUMERIC_FEATURES


def to_arrays(model: Any, rows: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    """The (n, 8) float matrix (NaN = missing) and category indices the API would build."""
    numeric = np.array(
        [[np.nan if r[name] is None else r[name] for name in NUMERIC_FEATURES] for r in rows],
        dtype=np.float64,
    )
    categories = np.array([model.category_index(r[CATEGORICAL_FEATURE]) for r in rows])
    return numeric, categories


def median_ms(call: Callable[[], object], *, repeats: int, warmup: int) -> float:
    """Median wall time of ``call`` in milliseconds, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1e6


def measure_model_time(
    model_dir: Path, rows: Sequence[dict[str, Any]], *, repeats: int
) -> dict[str, Any]:
    """Whole numpy path (features + neighbours + booster) and booster alone, 1 and 100 rows."""
    from housing.serving import load_serving

    model = load_serving(model_dir)
    out: dict[str, Any] = {"available": True}
    for label, batch in (("1_row", rows[:1]), ("100_rows", rows[:100])):
        out[label] = _time_batch(
            model, batch, repeats if len(batch) == 1 else max(repeats // 10, 5)
        )
    return out


def _time_batch(model: Any, batch: Sequence[dict[str, Any]], repeats: int) -> dict[str, Any]:
    numeric, categories = to_arrays(model, batch)
    matrix = model.features(numeric, categories)
    return {
        "rows": len(batch),
        "predict_ms": median_ms(
            lambda: model.predict(numeric, categories), repeats=repeats, warmup=20
        ),
        "booster_ms": median_ms(lambda: model.predict_raw(matrix), repeats=repeats, warmup=20),
    }


def model_time_or_reason(
    model_dir: Path, rows: Sequence[dict[str, Any]], *, repeats: int
) -> dict[str, Any]:
    """``measure_model_time``, or why it could not run (no bundle, no housing.serving)."""
    if not (model_dir / "serving" / "manifest.json").is_file():
        return {"available": False, "reason": f"no serving bundle in {model_dir / 'serving'}"}
    try:
        return measure_model_time(model_dir, rows, repeats=repeats)
    except ImportError as exc:
        return {"available": False, "reason": f"housing.serving is not available ({exc})"}


def main() -> None:
    import argparse
    import json
    import logging
    import sys

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    from bench.pipeline import DEFAULT_MIRROR, machine
    from bench.serve_load import candidate_rows

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dirs", type=Path, nargs="+")
    parser.add_argument("--repeats", type=int, default=400)
    parser.add_argument("--data", type=Path, default=Path(DEFAULT_MIRROR))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log = logging.getLogger("bench.model_time")
    log.info("%s", json.dumps(machine()))
    for model_dir in args.model_dirs:
        rows = candidate_rows(model_dir, args.data, 100)
        config = json.loads((model_dir / "serving" / "config.json").read_text())
        trees = int(config["booster"]["num_trees"])
        result = measure_model_time(model_dir, rows, repeats=args.repeats)
        batch = result["100_rows"]
        log.info(
            "%s: %d trees; 1 row %.3f ms; 100 rows %.2f ms (booster %.2f ms, %.1f us per tree, "
            "the rest %.2f ms)",
            model_dir, trees, result["1_row"]["predict_ms"], batch["predict_ms"],
            batch["booster_ms"], 1000 * batch["booster_ms"] / trees,
            batch["predict_ms"] - batch["booster_ms"],
        )  # fmt: skip


if __name__ == "__main__":
    main()
