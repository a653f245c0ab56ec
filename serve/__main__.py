"""`python -m serve`: uvicorn with uvloop/httptools and one worker on HOST:PORT from settings.

A setting that cannot be used (``PORT=abc``, an unknown model source, a bad public key) ends
start-up with one line naming the variable and exit status 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import uvicorn
from pydantic import ValidationError

from housing.cli_errors import fail, validation_line
from serve.config import Settings, get_settings
from serve.logs import configure_logging


def _env_name(loc: Sequence[int | str]) -> str:
    """The environment variable a settings field is read from (``model_sources.0``: the list)."""
    return str(loc[0]).upper()


def load_settings() -> Settings:
    """The settings, or one ``error:`` line and exit 1 when the environment has a bad value."""
    try:
        return get_settings()
    except ValidationError as exc:
        fail(f"bad setting: {validation_line(exc, _env_name)}")


def main() -> None:
    """Run the API in this process (the container's entry point)."""
    settings = load_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    uvicorn.run(
        "serve.main:app",
        host=settings.host,
        port=settings.port,
        workers=1,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=30,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
