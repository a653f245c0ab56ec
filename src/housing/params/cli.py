"""``housing-params``: check ``params.yaml`` against its schema, export the schema.

``housing-params check`` validates every section and the rules across them in a fraction of
a second (no ML library is imported), so ``make pipeline`` and the workflow run it before any
stage; a bad value is one line naming its key, and the exit status is 1.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from housing import logs
from housing.params.base import PARAMS_FILE, ParamsError

logger = logging.getLogger(__name__)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Check params.yaml against its typed schema; export the schema for editors.",
)

FileOption = Annotated[Path, typer.Option("--file", "-f", help="The parameters file.")]


@app.command()
def check(file: FileOption = PARAMS_FILE) -> None:
    """Validate every section of the file and the rules across sections."""
    from housing.params.file import SECTIONS, check

    try:
        check(file)
    except ParamsError as exc:
        for line in exc.problems:
            logger.error("%s", line)
        raise typer.Exit(1) from None
    logger.info("%s: %d sections valid", file, len(SECTIONS))


def render_schema() -> str:
    """``params.schema.json`` as committed: the schema, indented, with a final newline."""
    from housing.params.file import json_schema

    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"


@app.command()
def schema(
    out: Annotated[
        Path | None, typer.Option(help="Write it here (atomically); default: standard output.")
    ] = None,
) -> None:
    """Export the JSON Schema of params.yaml (committed as params.schema.json)."""
    text = render_schema()
    if out is None:
        sys.stdout.write(text)
        return
    from housing.io import write_text

    write_text(out, text)
    logger.info("wrote %s", out)


def main() -> None:
    logs.configure()
    app()


if __name__ == "__main__":
    main()
