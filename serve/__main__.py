"""`python -m serve`: uvicorn with uvloop/httptools and one worker on HOST:PORT from settings."""

from __future__ import annotations

import uvicorn

from serve.config import get_settings
from serve.logs import configure_logging


def main() -> None:
    """Run the API in this process (the container's entry point)."""
    settings = get_settings()
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
