"""The README quick start: ``cynode serve --role=all`` with nothing configured gets its node ready."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.fixtures.nodemanager import free_port


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Outside pytest's tmp_path: as root the embedded cluster runs as the postgres user, which must
    # be able to traverse the path.
    path = Path(tempfile.mkdtemp(prefix="cynode-nm-"))
    path.chmod(0o755)
    yield path
    pid_file = path / "postgres" / "postmaster.pid"
    if pid_file.exists():
        subprocess.run(["pkill", "-F", str(pid_file)], check=False)
    shutil.rmtree(path, ignore_errors=True)


def test_all_in_one_serve_makes_its_worker_ready_by_itself(data_dir: Path) -> None:
    ports = {name: free_port() for name in ("gateway", "control_plane", "worker_api")}
    command = [sys.executable, "-m", "cynode.cli", "serve", "--role=all", "--data-dir", str(data_dir)]
    for name, port in ports.items():
        command += ["--set", f"{name}.port={port}"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    readyz = f"http://127.0.0.1:{ports['worker_api']}/readyz"
    try:
        deadline = time.monotonic() + 90
        status = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                status = httpx.get(readyz).status_code
            except httpx.TransportError:
                status = None
            if status == 200:
                break
            time.sleep(0.5)
        assert process.poll() is None, f"serve exited: {process.communicate()}"
        assert status == 200, f"the Worker API never became ready (last status {status})"
        assert httpx.get(readyz).text == "ready"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert "node_registered" in stderr
    assert "node_config_applied" in stderr
    psk = (data_dir / "secrets" / "node_registration_psk").read_text().strip()
    assert psk not in stderr, "the registration PSK was logged"
    assert "eyJ" not in stderr, "a JWT was logged"
