"""`python -m app` as a container would run it: health endpoint and XSRF protection."""

from __future__ import annotations

import httpx
import pytest
from app_servers import app_command, free_port, running


@pytest.mark.slow
def test_launcher_serves_health_and_enforces_xsrf(stub, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"API_URL": stub.url, "PORT": str(port), "HOST": "127.0.0.1"}
    with running(
        app_command(), env=env, health_url=f"{base}/_stcore/health", log=tmp_path / "app.log"
    ):
        health = httpx.get(f"{base}/_stcore/health", timeout=10)
        assert (health.status_code, health.text) == (200, "ok")
        assert httpx.get(f"{base}/", timeout=10).status_code == 200
        # An upload without the XSRF token is refused: protection is on.
        upload = httpx.put(
            f"{base}/_stcore/upload_file/session/file",
            files={"file": ("a.csv", b"x,y\n1,2\n", "text/csv")},
            timeout=10,
        )
        assert upload.status_code == 403
        assert "XSRF" in upload.text
