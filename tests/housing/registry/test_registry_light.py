"""Fast checks that need no MLflow import: import cost, URI defaults, table formatting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from housing.registry import DEFAULT_TRACKING_URI, VersionInfo, resolve_tracking_uri
from housing.registry.cli import format_table
from housing.registry.log import flatten_params
from housing.registry.tracking import default_artifact_location, sqlite_path


def test_importing_the_registry_package_does_not_import_mlflow():
    code = (
        "import sys, housing.registry, housing.registry.cli;"
        "from housing.registry import resolve;"
        "sys.exit(1 if any(m == 'mlflow' or m.startswith('mlflow.') for m in sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_tracking_uri_precedence(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri() == DEFAULT_TRACKING_URI == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert resolve_tracking_uri() == "http://127.0.0.1:5000"
    assert resolve_tracking_uri("sqlite:///x.db") == "sqlite:///x.db"


def test_default_sqlite_store_keeps_artifacts_in_mlartifacts_beside_the_db(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert sqlite_path("sqlite:///mlflow.db") == Path("mlflow.db")
    assert sqlite_path("sqlite:////abs/dir/m.db") == Path("/abs/dir/m.db")
    assert default_artifact_location("sqlite:///mlflow.db") == (tmp_path / "mlartifacts").as_uri()
    assert default_artifact_location("sqlite:////abs/dir/m.db") == "file:///abs/dir/mlartifacts"
    assert default_artifact_location("http://127.0.0.1:5000") is None


def test_flatten_params_dotted_and_stringified():
    flat = flatten_params({"train": {"model": {"alpha": 0.5, "layers": [1, 2]}}, "seed": 42})
    assert flat == {"train.model.alpha": "0.5", "train.model.layers": "[1, 2]", "seed": "42"}


def test_list_table_has_one_row_per_version_with_metrics_and_decision():
    versions = [
        VersionInfo(
            "2",
            [],
            "r2",
            {"rmse": 44_800.4, "r2": 0.86},
            {"promotion.decision": "held", "promotion.mode": "gates"},
            "2026-11-27T13:00:00Z",
        ),
        VersionInfo("1", ["champion"], "r1", {}, {}, "2026-11-27T12:00:00Z"),
    ]
    lines = format_table(versions).splitlines()
    assert lines[0].split() == ["VERSION", "ALIASES", "RMSE", "R2", "CREATED", "DECISION"]
    assert lines[1].split() == [
        "2",
        "-",
        "44,800",
        "0.8600",
        "2026-11-27T13:00:00Z",
        "held",
        "(gates)",
    ]
    assert lines[2].split() == ["1", "champion", "-", "-", "2026-11-27T12:00:00Z", "-"]


def test_registry_errors_mask_the_password_of_the_tracking_uri():
    from registry_support import free_port

    from housing.registry import RegistryError
    from housing.registry.tracking import check_reachable, translated

    uri = f"http://admin:S3cretPw@127.0.0.1:{free_port()}"
    with pytest.raises(RegistryError) as err:
        check_reachable(uri, must_exist=True)
    assert "S3cretPw" not in str(err.value) and "admin:***@" in str(err.value)
    with pytest.raises(RegistryError) as err, translated(f"reading x at {uri}"):
        raise OSError(f"connection to {uri} failed (password S3cretPw)")
    assert "S3cretPw" not in str(err.value) and err.value.__cause__ is None


def _health_server(seen: list[str | None]):
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            ok = self.path == "/health"
            self.send_response(200 if ok else 404)
            self.end_headers()
            self.wfile.write(b"OK" if ok else b"")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_check_reachable_probes_a_live_server_with_credentials_in_the_uri():
    import base64

    from housing.registry.tracking import check_reachable

    seen: list[str | None] = []
    server = _health_server(seen)
    try:
        port = server.server_address[1]
        check_reachable(f"http://u:S3cret@127.0.0.1:{port}", must_exist=True)
        check_reachable(f"http://127.0.0.1:{port}/", must_exist=True)
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ["Basic " + base64.b64encode(b"u:S3cret").decode(), None]


@pytest.mark.parametrize(
    "template",
    ["http://u:S3cret@127.0.0.1:{port}", "http://u:S3cret@127.0.0.1:notaport/x"],
)
def test_check_reachable_on_a_dead_or_malformed_uri_is_one_redacted_line(template):
    from registry_support import free_port

    from housing.registry import RegistryError
    from housing.registry.tracking import check_reachable

    uri = template.format(port=free_port())
    with pytest.raises(RegistryError) as err:
        check_reachable(uri, must_exist=True)
    message = str(err.value)
    assert "S3cret" not in message and "\n" not in message
    assert message.startswith("tracking server unreachable at ")


def test_show_reads_the_shadow_section_housing_monitor_writes(tmp_path):
    """`show --alias challenger` reads what housing-monitor writes: its own shadow summary."""
    import json

    from housing.monitor.check import shadow_agreement
    from housing.registry.evidence import evidence_lines

    at = ("2026-12-01T00:00:00Z", "2026-12-01T06:00:00Z")
    records = [
        {"price": 200_000.0, "low": 150_000.0, "high": 250_000.0, "version": "2", "at": at[0]},
        {"price": 100_000.0, "low": 90_000.0, "high": 110_000.0, "version": "2", "at": at[1]},
    ]
    for record, shadow in zip(records, (210_000.0, 120_000.0), strict=True):
        record |= {"shadow_version": "3", "shadow_price": shadow}
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"shadow": shadow_agreement(records)}))
    assert evidence_lines(summary, "3")[1:] == [
        f"  window:     {at[0]} .. {at[1]}",
        "  instances:  2 scored by both, against champion 2",
        "  mean |diff|: 15,000.0 USD (12.5% relative)",
        "  inside the champion's interval: 50.0%",
    ]
    assert "none for version 4" in evidence_lines(summary, "4")[0]
    summary.write_text(json.dumps({"shadow": None}))  # no shadow in the window
    assert "has no shadow summary" in evidence_lines(summary, "3")[0]
    assert "has no shadow summary" in evidence_lines(tmp_path / "missing.json", "3")[0]
    summary.write_text(json.dumps({"shadow": {"challenger_version": "3"}}))
    assert evidence_lines(summary, "3") == [
        "shadow evidence: unreadable (shadow.instances is missing)"
    ]
