"""``housing.download.fetch``: every failure is one line and leaves nothing at the output path."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from housing.download import DownloadError, fetch

BODY = b"longitude,latitude\n-122.23,37.88\n" * 100
SHA = hashlib.sha256(BODY).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    """/ok serves BODY; anything else is a 404; /truncated promises more bytes than it sends."""

    def do_GET(self) -> None:
        if self.path == "/ok/housing.csv":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)
        elif self.path == "/truncated/housing.csv":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY) * 2))
            self.end_headers()
            self.wfile.write(BODY)
            self.wfile.flush()
            self.close_connection = True
        else:
            self.send_error(404, "Not Found")

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A socket that completes TCP handshakes (backlog) but never answers a request."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/housing.csv"
    finally:
        sock.close()


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def assert_failed_cleanly(exc: DownloadError, dest: Path, *fragments: str) -> None:
    message = str(exc)
    assert "\n" not in message, "one line"
    for fragment in fragments:
        assert fragment in message
    assert not dest.exists(), "nothing at the output path"
    assert list(dest.parent.iterdir()) == [], "no temporary files left behind"


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "raw" / "housing.csv"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "mirror" / "housing.csv"
    path.parent.mkdir()
    path.write_bytes(BODY)
    return path


def test_local_path_and_file_url(source, dest):
    assert fetch(str(source), dest, sha256=SHA) == dest
    assert dest.read_bytes() == BODY
    dest.unlink()
    fetch(source.as_uri(), dest, sha256=SHA)
    assert dest.read_bytes() == BODY
    assert [p.name for p in dest.parent.iterdir()] == ["housing.csv"]


def test_bad_checksum(source, dest):
    with pytest.raises(DownloadError) as info:
        fetch(str(source), dest, sha256="0" * 64)
    assert_failed_cleanly(
        info.value, dest, f"sha256 mismatch for {source}", f"got {SHA}", f"({len(BODY)} bytes)"
    )


def test_bad_checksum_keeps_a_previous_good_file(source, dest):
    fetch(str(source), dest, sha256=SHA)
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        fetch(str(source), dest, sha256="0" * 64)
    assert dest.read_bytes() == BODY
    assert [p.name for p in dest.parent.iterdir()] == ["housing.csv"]


def test_missing_local_path(tmp_path, dest):
    missing = tmp_path / "nowhere.csv"
    with pytest.raises(DownloadError) as info:
        fetch(str(missing), dest, sha256=SHA)
    assert_failed_cleanly(info.value, dest, f"{missing} not found", "HOUSING_DATA_MIRROR")


def test_unsupported_scheme(dest):
    with pytest.raises(DownloadError) as info:
        fetch("ftp://127.0.0.1/housing.csv", dest, sha256=SHA)
    assert_failed_cleanly(info.value, dest, "unsupported URL scheme 'ftp'")


def test_unreachable_url(dest):
    url = f"http://127.0.0.1:{closed_port()}/housing.csv"
    with pytest.raises(DownloadError) as info:
        fetch(url, dest, sha256=SHA, timeout=5)
    assert_failed_cleanly(info.value, dest, "cannot reach 127.0.0.1:", "HOUSING_DATA_MIRROR")


@pytest.mark.slow
def test_http_success(dest):
    with http_server() as base:
        fetch(f"{base}/ok/housing.csv", dest, sha256=SHA, timeout=5)
    assert dest.read_bytes() == BODY
    assert [p.name for p in dest.parent.iterdir()] == ["housing.csv"]


@pytest.mark.slow
def test_http_404(dest):
    with http_server() as base, pytest.raises(DownloadError) as info:
        fetch(f"{base}/gone/housing.csv", dest, sha256=SHA, timeout=5)
    assert_failed_cleanly(info.value, dest, "HTTP 404 Not Found fetching", "check download.url")


@pytest.mark.slow
def test_http_truncated_body(dest):
    with http_server() as base, pytest.raises(DownloadError) as info:
        fetch(f"{base}/truncated/housing.csv", dest, sha256=SHA, timeout=5)
    assert_failed_cleanly(info.value, dest, "truncated download from", "retry")


@pytest.mark.slow
def test_http_timeout(dest):
    with silent_server() as url, pytest.raises(DownloadError) as info:
        fetch(url, dest, sha256=SHA, timeout=1)
    assert_failed_cleanly(info.value, dest, "timed out after 1s fetching", "retry")
