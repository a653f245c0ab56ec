"""Start the API and the Streamlit app together on this machine; Ctrl-C stops both.

The API serves the local registry's champion (``sqlite:///mlflow.db``, falling back to
``models/``); the app talks to it over HTTP at ``API_URL``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request

logger = logging.getLogger("run_local")


def wait_http(url: str, timeout: float) -> bool:
    """Poll ``url`` until it answers 200 or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return True
        except OSError:
            time.sleep(0.3)
    return False


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    api_port = os.environ.get("API_PORT", "8000")
    app_port = os.environ.get("APP_PORT", "8501")
    api_env = {
        **os.environ,
        "PORT": api_port,
        "MLFLOW_TRACKING_URI": os.environ.get("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db"),
    }
    app_env = {**os.environ, "PORT": app_port, "API_URL": f"http://127.0.0.1:{api_port}"}
    api = subprocess.Popen([sys.executable, "-m", "serve"], env=api_env)
    procs = [api]
    try:
        if not wait_http(f"http://127.0.0.1:{api_port}/health", timeout=60):
            logger.error("the API did not start on port %s", api_port)
            return 1
        procs.append(subprocess.Popen([sys.executable, "-m", "app"], env=app_env))
        logger.info("API  http://127.0.0.1:%s/docs", api_port)
        logger.info("app  http://127.0.0.1:%s  (Ctrl-C stops both)", app_port)
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    sys.exit(main())
