"""The workflow's last job: a table of every job's result in the job summary; exit 1 if any
job failed or was cancelled (skipped is fine), so one required check guards the branch.

Reads the ``needs`` context as JSON (``RESULTS: ${{ toJSON(needs) }}``), ``EVENT`` and
``REF``; writes Markdown to ``$GITHUB_STEP_SUMMARY`` (stdout when unset). Standard library
only: the summary job installs nothing.

    RESULTS='{"lint": {"result": "success"}}' EVENT=push REF=main python3 scripts/ci_summary.py
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

ICONS = {"success": "✅", "skipped": "⏭️", "cancelled": "🚫"}
PASSING = ("success", "skipped")


def table(results: dict[str, str], event: str, ref: str) -> str:
    rows = [f"| {job} | {ICONS.get(result, '❌')} {result} |" for job, result in results.items()]
    return "\n".join(
        [f"## CI summary ({event} on {ref})", "", "| Job | Result |", "|---|---|", *rows, ""]
    )


def main() -> int:
    try:
        needs = json.loads(os.environ.get("RESULTS") or "")
        results = {job: str(value["result"]) for job, value in needs.items()}
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        sys.stderr.write(f"error: RESULTS must be the JSON of the needs context ({exc})\n")
        return 2
    text = table(results, os.environ.get("EVENT", "?"), os.environ.get("REF", "?"))
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with Path(path).open("a", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    failed = sorted(job for job, result in results.items() if result not in PASSING)
    if failed:
        sys.stderr.write(f"error: failed or cancelled: {', '.join(failed)}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
