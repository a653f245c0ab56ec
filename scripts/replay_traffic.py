"""Replay a split of the data set through a running API as traffic, optionally shifted.

    python scripts/replay_traffic.py --api http://127.0.0.1:8000                # unchanged
    python scripts/replay_traffic.py --api http://127.0.0.1:8000 --shift income  # incomes x 1.5
    python scripts/replay_traffic.py --api http://127.0.0.1:8000 --shift inland  # inland only

The rows are shuffled first (``--seed``): the census file, and so each split, is ordered by
place, and traffic is not; a window of the last N instances over ordered rows would see one
region at a time. Rows go in batches (``--batch``) to POST /api/v1/predict. A
batch the API refuses (422) is sent again without the instances its error names, as a client
would fix its request: those are counted by field, and the rest are priced. What the
monitoring then sees is in docs/monitoring.md. The true values are never sent.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

logger = logging.getLogger("replay_traffic")

RAW_FEATURES = (
    "longitude",
    "latitude",
    "housing_median_age",
    "total_rooms",
    "total_bedrooms",
    "population",
    "households",
    "median_income",
    "ocean_proximity",
)
SHIFTS = ("none", "income", "inland")
_ROW = re.compile(r"^instances\[([0-9]+)\]\.(.+)$")


def shifted(frame: Any, shift: str, income_factor: float, seed: int | None = 0) -> Any:
    """The rows to replay, shuffled with ``seed`` (None: in file order): unchanged, incomes
    scaled, or the inland districts alone."""
    frame = frame.copy() if seed is None else frame.sample(frac=1.0, random_state=seed)
    if shift == "income":
        frame["median_income"] = frame["median_income"] * income_factor
    elif shift == "inland":
        frame = frame[frame["ocean_proximity"].str.upper() == "INLAND"]
    return frame.reset_index(drop=True)


def instances(frame: Any) -> list[dict[str, Any]]:
    rows = frame[list(RAW_FEATURES)].to_dict("records")
    for row in rows:
        for key, value in row.items():
            if isinstance(value, float) and math.isnan(value):
                row[key] = None  # a missing total_bedrooms
    return rows


def post(url: str, batch: list[dict[str, Any]], timeout: float) -> tuple[int, Any]:
    req = urllib.request.Request(
        url,
        data=json.dumps({"instances": batch}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def replay(api: str, rows: list[dict[str, Any]], *, batch: int, timeout: float = 30.0) -> dict:
    """Send ``rows``; returns counts: priced, refused instances by field, requests."""
    url = api.rstrip("/") + "/api/v1/predict"
    priced, requests, refused = 0, 0, Counter()
    for start in range(0, len(rows), batch):
        pending = rows[start : start + batch]
        while pending:
            requests += 1
            status, body = post(url, pending, timeout)
            if status == 200:
                priced += len(body["predictions"])
                break
            if status != 422:
                raise RuntimeError(f"{url} answered {status}: {body}")
            bad: dict[int, set[str]] = {}
            for field in body["error"]["fields"]:
                match = _ROW.match(field["field"])
                if match is None:
                    raise RuntimeError(f"{url} refused the whole batch: {body['error']}")
                bad.setdefault(int(match[1]), set()).add(match[2])
            for names in bad.values():
                refused.update(names)
            pending = [row for i, row in enumerate(pending) if i not in bad]
    return {"rows": len(rows), "priced": priced, "requests": requests, "refused": dict(refused)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--api", default="http://127.0.0.1:8000", help="the API's base URL")
    parser.add_argument(
        "--data", type=Path, default=Path("data/split/test.parquet"), help="parquet or CSV"
    )
    parser.add_argument("--shift", choices=SHIFTS, default="none")
    parser.add_argument("--income-factor", type=float, default=1.5)
    parser.add_argument("--batch", type=int, default=100, help="instances per request")
    parser.add_argument("--seed", type=int, default=0, help="shuffling seed")
    parser.add_argument("--in-order", action="store_true", help="replay in file order")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        import pandas as pd

        if not args.data.is_file():
            raise FileNotFoundError(f"{args.data}: no such file (make pipeline, or dvc pull)")
        read = pd.read_csv if args.data.suffix == ".csv" else pd.read_parquet
        seed = None if args.in_order else args.seed
        frame = shifted(read(args.data), args.shift, args.income_factor, seed)
        counts = replay(args.api, instances(frame), batch=args.batch)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        reason = getattr(exc, "reason", None) or exc
        sys.stderr.write(f"error: {str(reason).splitlines()[0]}\n")
        return 1
    logger.info(
        "replayed %d rows (%s) in %d requests: %d priced, refused by field %s",
        counts["rows"],
        args.shift,
        counts["requests"],
        counts["priced"],
        counts["refused"] or "none",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
