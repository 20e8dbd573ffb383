"""`cynode serve` as a user runs it: every role up, health and readiness, clean shutdown, and an
embedded database that survives a restart."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

CYNODE = [sys.executable, "-m", "cynode.cli"]


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: as root the embedded cluster runs as the postgres user, which
    # must be able to traverse the path.
    path = Path(tempfile.mkdtemp(prefix="cynode-serve-"))
    path.chmod(0o755)
    yield path
    pid_file = path / "postgres" / "postmaster.pid"
    if pid_file.exists():  # a failed test must not leave a server behind
        subprocess.run(["pkill", "-F", str(pid_file)], check=False)
    shutil.rmtree(path, ignore_errors=True)


class Serve:
    def __init__(self, data_dir: Path) -> None:
        self.gateway, self.control_plane, self.worker = _free_ports(3)
        self.process = subprocess.Popen(
            [
                *CYNODE, "serve", "--role=all", "--data-dir", str(data_dir),
                "--set", f"gateway.port={self.gateway}",
                "--set", f"control_plane.port={self.control_plane}",
                "--set", f"worker_api.port={self.worker}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip

    def url(self, port: int, path: str) -> str:
        return f"http://127.0.0.1:{port}{path}"

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited early: {self.process.communicate()}")
            try:
                if all(httpx.get(self.url(p, "/healthz")).status_code == 200 for p in self.ports):
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError("serve did not become healthy in 60 s")

    @property
    def ports(self) -> list[int]:
        return [self.gateway, self.control_plane, self.worker]

    def terminate(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=60)
        return self.process.returncode, stderr


def test_all_roles_serve_health_and_readiness_then_stop_cleanly(data_dir: Path) -> None:
    serve = Serve(data_dir)
    try:
        serve.wait_healthy()
        for port in serve.ports:
            response = httpx.get(serve.url(port, "/healthz"))
            assert (response.status_code, response.text) == (200, "ok")
        ready = httpx.get(serve.url(serve.control_plane, "/readyz"))
        assert ready.status_code == 503
        assert "no inference path available" in ready.text
        assert "\n" not in ready.text.strip()
    finally:
        code, stderr = serve.terminate()
    assert code == 0, stderr
    assert not (data_dir / "postgres" / "postmaster.pid").exists(), "embedded PostgreSQL still running"


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
