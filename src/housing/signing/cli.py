"""``housing-sign`` / ``python -m housing.signing``: keygen, sign and verify a model directory.

Every failure is one line on stderr (``error: ...``, :mod:`housing.cli_errors`) and exit
status 1, usage errors included (docs/signing.md); success is one line on stdout. Plain
argparse, so ``verify`` runs where only the API's dependencies are installed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from housing.cli_errors import expected_errors, fail
from housing.signing.keys import KeyRing, signing_key_from_env, write_keypair
from housing.signing.record import RECORD_FILE, PromotionRecord, SigningError

logger = logging.getLogger(__name__)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see {self.prog} --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="housing-sign",
        description="Key generation, signing and verification of champion directories "
        "(docs/signing.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    keygen = sub.add_parser("keygen", help="write a new EC P-256 key pair")
    keygen.add_argument("--out", type=Path, required=True, help="directory for the key files")
    keygen.add_argument("--force", action="store_true", help="overwrite an existing key pair")

    sign = sub.add_parser(
        "sign", help="sign DIR with the key in HOUSING_SIGNING_KEY or HOUSING_SIGNING_KEY_FILE"
    )
    sign.add_argument("directory", type=Path)
    sign.add_argument("--version", required=True, help="registered model version")
    sign.add_argument("--sequence", type=int, required=True, help="promotion sequence number")
    sign.add_argument("--decision", required=True, help="why this version is promoted")
    sign.add_argument("--alias", default="champion")
    sign.add_argument("--action", choices=("promote", "rollback"), default="promote")
    sign.add_argument("--name", help="registered model name (default: model.json's name)")
    sign.add_argument("--data-md5", help="raw data md5 (default: model.json's data_md5)")
    sign.add_argument("--git-commit", help="code commit (default: model.json's git_commit)")
    sign.add_argument("--who", help="actor (default: CI actor or OS user)")
    sign.add_argument("--extra", default="{}", help="JSON object of extra context")

    verify = sub.add_parser("verify", help="verify DIR's signature and promotion record")
    verify.add_argument("directory", type=Path)
    verify.add_argument(
        "--key",
        type=Path,
        action="append",
        default=[],
        help="trusted public key PEM (repeat; default: HOUSING_VERIFY_KEYS/_KEY_FILES)",
    )
    verify.add_argument("--expect-name")
    verify.add_argument("--expect-version")
    verify.add_argument("--expect-alias")
    verify.add_argument("--min-sequence", type=int)
    return parser


def _meta(directory: Path) -> dict[str, object]:
    path = directory / "model.json"
    try:
        meta = json.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise SigningError(f"{path} is not readable JSON: {exc}") from None
    return meta if isinstance(meta, dict) else {}


def _sign(args: argparse.Namespace) -> str:
    from housing.signing.sign import now_utc, sign_directory, who

    if not args.directory.is_dir():
        raise SigningError(f"{args.directory} is not a directory")
    key = signing_key_from_env()
    if key is None:
        raise SigningError("no signing key: set HOUSING_SIGNING_KEY or HOUSING_SIGNING_KEY_FILE")
    meta = _meta(args.directory)
    try:
        extra = json.loads(args.extra)
    except ValueError as exc:
        raise SigningError(f"--extra is not JSON: {exc}") from None

    def pick(value: str | None, field: str) -> str:
        chosen = value if value is not None else meta.get(field)
        if not chosen:
            raise SigningError(
                f"--{field.replace('_', '-')} not given and model.json has no {field}"
            )
        return str(chosen)

    record = PromotionRecord(
        name=pick(args.name, "name"),
        version=args.version,
        alias=args.alias,
        action=args.action,
        data_md5=pick(args.data_md5, "data_md5"),
        git_commit=pick(args.git_commit, "git_commit"),
        decision=args.decision,
        sequence=args.sequence,
        timestamp=now_utc(),
        who=args.who or who(),
        extra=extra if isinstance(extra, dict) else {"value": extra},
    )
    signed = sign_directory(args.directory, record, key)
    return (
        f"signed {args.directory}: {signed.name} v{signed.version} @{signed.alias}, "
        f"sequence {signed.sequence}, {len(signed.files)} files, key {key.key_id[:12]}…"
    )


def _verify(args: argparse.Namespace) -> str:
    from housing.signing.verify import verify

    keys = KeyRing.from_files(args.key) if args.key else KeyRing.from_env()
    if not len(keys):
        raise SigningError(
            "no verification key: pass --key or set HOUSING_VERIFY_KEYS/HOUSING_VERIFY_KEY_FILES"
        )
    expected = {"name": args.expect_name, "version": args.expect_version}
    expected["alias"] = args.expect_alias
    result = verify(args.directory, keys, expected=expected, min_sequence=args.min_sequence)
    record = result.record
    assert record is not None  # keys are configured, so verify() either signed or raised
    return (
        f"ok {args.directory}: {record.name} v{record.version} @{record.alias}, "
        f"{record.action} #{record.sequence} by {record.who} at {record.timestamp}, "
        f"key {result.key_id[:12] if result.key_id else '?'}… ({RECORD_FILE} and every file signed)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand: 0 after its line on stdout; a failure exits 1 with one line."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with expected_errors(SigningError, OSError):
        if args.command == "keygen":
            private, public, kid = write_keypair(args.out, force=args.force)
            line = f"wrote {private} (0600) and {public}; key id {kid}"
        elif args.command == "sign":
            line = _sign(args)
        else:
            line = _verify(args)
    sys.stdout.write(line + "\n")
    return 0
