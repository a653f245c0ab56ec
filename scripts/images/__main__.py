"""`python -m scripts.images build [NAME ...] [--cold]`: build the images, report size and time."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from scripts.images.build import IMAGES, as_dicts, build_all, report
from scripts.images.podman import PodmanError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.images", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build images with podman (all three by default)")
    build.add_argument("names", nargs="*", help=f"any of {', '.join(IMAGES)} (default: all)")
    build.add_argument("--cold", action="store_true", help="no layer cache, no uv cache")
    build.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        built = build_all(args.names or list(IMAGES), cold=args.cold)
    except PodmanError as exc:
        logging.getLogger("scripts.images").error("error: %s", exc)
        return 1
    sys.stdout.write(report(built) + "\n")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(as_dicts(built), indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
