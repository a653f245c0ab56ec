"""`python -m app`: replace this process with the Streamlit server (exec form, for containers).

A bad setting (``PORT``, ``API_URL``, an ``APP_*`` variable) ends start-up with one line,
``error: ...``, and exit status 1, before Streamlit starts; the page would only show it later.
The app image has no ``housing`` package, so this writes that line itself.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from app.settings import AppSettings, SettingsError

MAIN_SCRIPT = Path(__file__).resolve().with_name("main.py")


def build_command(environ: Mapping[str, str]) -> list[str]:
    """The `streamlit run` argv: port from PORT, address from HOST, container-safe settings."""
    port = environ.get("PORT", "8501")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise SystemExit(f"error: PORT must be a TCP port number, got {port!r}")
    host = environ.get("HOST", "127.0.0.1")
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(MAIN_SCRIPT),
        f"--server.port={port}",
        f"--server.address={host}",
        "--server.headless=true",
        "--server.enableXsrfProtection=true",
        "--server.enableCORS=true",
        "--server.fileWatcherType=none",
        "--browser.gatherUsageStats=false",
        "--client.showErrorDetails=none",
    ]


def main() -> None:
    """Exec Streamlit so signals (SIGTERM from the container runtime) reach it directly."""
    try:
        AppSettings.from_env(os.environ)
    except SettingsError as exc:
        raise SystemExit(f"error: {exc}") from None
    command = build_command(os.environ)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
