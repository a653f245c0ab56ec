"""(b) The model's own time: the serving bundle's numpy path, in process, after warm-up.

Imported by bench/serve_load.py; run alone, it times one or more model directories (each
with ``serving/`` and ``model.json``) on the same 100 real districts and prints the cost per
tree, from which the serving budget's rounds cap in ``params.yaml`` is derived, then the
compiled predictor (docs/serving-bundle.md) beside LightGBM's: booster alone and whole path,
1 and 100 rows, medians of interleaved calls, and two threads scoring batches side by side
against one thread doing both. A directory without ``compiled/`` (``models/``) is promoted
unsigned into a temporary champion with the booster compiled on this machine (~20 s):

    python bench/model_time.py models [OTHER_MODEL_DIR ...] [--repeats 400]
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
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


def paired_median_ms(
    calls: Mapping[str, Callable[[], object]], *, repeats: int, warmup: int
) -> dict[str, float]:
    """Median wall time (ms) of each call, the calls interleaved so load hits them alike."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    times: dict[str, list[int]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter_ns()
            call()
            times[name].append(time.perf_counter_ns() - start)
    return {name: statistics.median(t) / 1e6 for name, t in times.items()}


def side_by_side(
    call: Callable[[], object], *, calls: int, threads: int = 2, rounds: int = 7
) -> float:
    """How much faster ``threads`` threads make ``calls`` calls than one thread (wall time).

    The median over ``rounds`` of serial-then-threaded pairs: on a shared machine a round
    where another process holds a core says little alone.
    """

    def serial() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            call()
        return time.perf_counter() - start

    def threaded() -> float:
        barrier = threading.Barrier(threads + 1)

        def work() -> None:
            barrier.wait()
            for _ in range(calls // threads):
                call()

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for worker in workers:
            worker.start()
        barrier.wait()
        start = time.perf_counter()
        for worker in workers:
            worker.join()
        return time.perf_counter() - start

    return statistics.median(serial() / threaded() for _ in range(rounds))


def compare_scorers(model: Any, rows: Sequence[dict[str, Any]], *, repeats: int) -> dict[str, Any]:
    """The compiled predictor beside LightGBM's (the model must have loaded one)."""
    compiled, booster = model.compiled, model.booster
    if compiled is None:
        raise ValueError("the model scores with LightGBM: no compiled predictor was loaded")
    out: dict[str, Any] = {}
    for label, batch in (("1_row", rows[:1]), ("100_rows", rows[:100])):
        n = repeats if len(batch) == 1 else max(repeats // 4, 20)
        out[label] = _scorer_times(model, *to_arrays(model, batch), repeats=n)
    numeric, categories = to_arrays(model, rows[:100])
    matrix = model.features(numeric, categories)
    calls = max(repeats // 10, 20)
    out["two_threads_speedup"] = {
        "lightgbm": side_by_side(lambda: booster.predict_raw(matrix), calls=calls),
        "compiled": side_by_side(lambda: compiled.predict_raw(matrix), calls=calls),
    }
    return out


def _scorer_times(
    model: Any, numeric: np.ndarray, categories: np.ndarray, *, repeats: int
) -> dict[str, Any]:
    compiled, booster = model.compiled, model.booster
    matrix = model.features(numeric, categories)
    booster_ms = paired_median_ms(
        {
            "lightgbm": lambda: booster.predict_raw(matrix),
            "compiled": lambda: compiled.predict_raw(matrix),
        },
        repeats=repeats,
        warmup=20,
    )
    path_ms = paired_median_ms(
        {
            "lightgbm": lambda: np.exp(booster.predict_raw(model.features(numeric, categories))),
            "compiled": lambda: model.predict(numeric, categories),
        },
        repeats=repeats,
        warmup=20,
    )
    return {
        "rows": len(numeric),
        "booster_ms": booster_ms,
        "booster_ratio": booster_ms["lightgbm"] / booster_ms["compiled"],
        "path_ms": path_ms,
        "path_ratio": path_ms["lightgbm"] / path_ms["compiled"],
    }


def compiled_champion(model_dir: Path, workdir: Path) -> Path:
    """``model_dir`` promoted unsigned into ``workdir`` with its booster compiled here."""
    from housing.signing import PromotionRecord, build_champion

    dest = workdir / "champion"
    record = PromotionRecord(
        name="bench", version="1", alias="champion", action="promote", data_md5="bench",
        git_commit="bench", decision="bench/model_time.py", sequence=1,
        timestamp="2026-01-01T00:00:00+00:00", who="bench",
    )  # fmt: skip
    build_champion(model_dir, dest, record, None, include=("model.json", "serving"), compiled=True)
    return dest


def main() -> None:
    import argparse
    import json
    import logging
    import sys

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root))
    from bench.pipeline import DEFAULT_MIRROR, machine
    from bench.serve_load import candidate_rows
    from housing.serving import load_serving

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
        workdir = Path(tempfile.mkdtemp(prefix="bench-compiled-"))
        try:
            champion = model_dir
            if not (model_dir / "compiled").is_dir():
                start = time.perf_counter()
                champion = compiled_champion(model_dir, workdir)
                log.info("compiled at promotion in %.1f s", time.perf_counter() - start)
            # The bench vouches for the champion it measures (unsigned when it built it).
            model = load_serving(champion, signed=True)
            if model.compiled is None:
                log.info("%s: no compiled predictor loaded (see the warning above)", model_dir)
                continue
            scorers = compare_scorers(model, rows, repeats=args.repeats)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        for label in ("1_row", "100_rows"):
            part = scorers[label]
            b, p = part["booster_ms"], part["path_ms"]
            log.info(
                "%s, %s: booster LightGBM %.4f ms, compiled %.4f ms (x%.2f); whole path "
                "LightGBM %.4f ms, compiled %.4f ms (x%.2f)",
                model_dir, label.replace("_", " "), b["lightgbm"], b["compiled"],
                part["booster_ratio"], p["lightgbm"], p["compiled"], part["path_ratio"],
            )  # fmt: skip
        speedup = scorers["two_threads_speedup"]
        log.info(
            "%s: two threads scoring 100-row batches side by side: x%.2f LightGBM (a handle "
            "per batch), x%.2f compiled (no lock), against one thread (median of 7 rounds)",
            model_dir, speedup["lightgbm"], speedup["compiled"],
        )  # fmt: skip


if __name__ == "__main__":
    main()
