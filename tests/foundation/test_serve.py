"""`cynode serve` as a user runs it: every role up, health and readiness, clean shutdown, and an
embedded database that survives a restart."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import httpx
import psycopg

from tests.fixtures.serve import CYNODE, Serve


def test_all_roles_serve_health_then_readiness_then_stop_cleanly(data_dir: Path) -> None:
    serve = Serve(data_dir)
    try:
        serve.wait_healthy()
        for port in serve.ports:
            response = httpx.get(serve.url(port, "/healthz"))
            assert (response.status_code, response.text) == (200, "ok")
        # The co-located node registers and serves the embedded model, so every role becomes ready.
        for port in serve.ports:
            response = serve.wait_ready(port)
            assert (response.status_code, response.text) == (200, "ready")
    finally:
        code, stderr = serve.terminate()
    assert code == 0, stderr
    assert not (data_dir / "postgres" / "postmaster.pid").exists(), "embedded PostgreSQL still running"


def test_without_a_node_readiness_names_the_missing_inference_path(data_dir: Path) -> None:
    serve = Serve(data_dir, roles="gateway,orchestrator", env={"CYNODE_NODE_REGISTRATION_PSK": "a-test-psk"})
    try:
        serve.wait_healthy()
        for port in serve.ports:
            ready = httpx.get(serve.url(port, "/readyz"))
            assert ready.status_code == 503
            assert ready.text.startswith("no inference path available (")
            assert "\n" not in ready.text
    finally:
        code, stderr = serve.terminate()
    assert code == 0, stderr


def test_second_start_reuses_the_embedded_database(data_dir: Path) -> None:
    first = Serve(data_dir)
    try:
        first.wait_healthy()
        dsn = f"postgresql://cynode@/cynode?host={data_dir / 'run'}&port=5432"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO system_settings (key, value, value_type) VALUES ('test.marker', '42', 'number')")
    finally:
        assert first.terminate()[0] == 0
    second = Serve(data_dir)
    try:
        second.wait_healthy()
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT value FROM system_settings WHERE key = 'test.marker'").fetchone()
        assert row == (42,)
    finally:
        assert second.terminate()[0] == 0


def test_busy_port_fails_with_a_clear_message(data_dir: Path) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        result = subprocess.run(
            [*CYNODE, "serve", "--role=node", "--data-dir", str(data_dir), "--set", f"worker_api.port={port}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        blocker.close()
    assert result.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr


def test_bad_setting_fails_at_start_naming_it(data_dir: Path) -> None:
    result = subprocess.run(
        [*CYNODE, "serve", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "CYNODE_GATEWAY_PORT": "not-a-port"},
    )
    assert result.returncode != 0
    assert "gateway.port" in result.stderr
    assert "CYNODE_GATEWAY_PORT" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_role_is_refused(data_dir: Path) -> None:
    result = subprocess.run(
        [*CYNODE, "serve", "--role=orchestrator,scheduler", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "unknown role 'scheduler'" in result.stderr
