"""The built wheel in a fresh virtualenv: ``cynode --help`` lists every command, ``serve --role=all`` comes up.

The slowest test of the area (building the wheel and installing its dependencies from pip's cache).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from cynode.cli import main
from tests.fixtures.identity import IDENTITY_ENV
from tests.fixtures.nodes import PSK_ENV
from tests.fixtures.stack import free_port

ROOT = Path(__file__).resolve().parents[2]


def _install_fresh(tmp_path: Path) -> Path:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
                   check=True, capture_output=True)  # fmt: skip
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    [wheel] = dist.glob("cynode-*.whl")
    installed = subprocess.run([venv / "bin" / "pip", "install", "-q", str(wheel)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-2000:]
    return venv / "bin" / "cynode"


def test_wheel_in_a_fresh_venv_lists_every_command_and_serves(tmp_path: Path, data_dir: Path) -> None:
    cynode = _install_fresh(tmp_path)
    help_text = subprocess.run([cynode, "--help"], capture_output=True, text=True, check=True).stdout
    for command in main.commands:
        assert f"  {command} " in help_text, command

    ports = {"gateway": free_port(), "control_plane": free_port(), "worker_api": free_port()}
    node_yaml = tmp_path / "node.yaml"
    node_yaml.write_text(
        f"version: 1\norchestrator:\n  url: http://127.0.0.1:{ports['control_plane']}\nnode:\n  id: wheel-node\n"
        "inference:\n  mode: disabled\n"
    )
    argv = [cynode, "serve", "--role=all", "--data-dir", str(data_dir), "--node-config", str(node_yaml)]
    for role, port in ports.items():
        argv += ["--set", f"{role}.port={port}"]
    env = {**os.environ, **IDENTITY_ENV, **PSK_ENV}
    serving = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        pending = dict(ports)
        while pending:
            assert serving.poll() is None, serving.communicate()[1][-3000:]
            assert time.monotonic() < deadline, f"not healthy: {sorted(pending)}"
            for role, port in list(pending.items()):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                        del pending[role]
                except httpx.TransportError:
                    time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{ports['gateway']}/openapi.json").json()["openapi"].startswith("3.1")
    finally:
        serving.send_signal(signal.SIGTERM)
        serving.communicate(timeout=60)
    assert serving.returncode == 0
