"""A node killed with -9 leaves nothing running: its private podman service and its llama.cpp
server die with it, and a restart finds exactly one of each for its data directory."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path

from tests.fixtures.serve import Serve


def helpers_of(data_dir: Path) -> dict[str, list[int]]:
    """Pids of the podman services and llama.cpp servers whose command line names ``data_dir``."""
    found: dict[str, list[int]] = {"podman": [], "llama": []}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(data_dir) not in command:
            continue
        if "system service" in command:
            found["podman"].append(int(proc.name))
        elif "llama_cpp.server" in command:
            found["llama"].append(int(proc.name))
    return found


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_kill_9_three_times_then_restart_leaves_one_podman_service_and_one_llama_server(data_dir: Path) -> None:
    for _ in range(3):
        serve = Serve(data_dir)
        serve.wait_healthy()
        assert serve.wait_ready(serve.worker).status_code == 200
        assert {kind: len(pids) for kind, pids in helpers_of(data_dir).items()} == {"podman": 1, "llama": 1}
        serve.process.send_signal(signal.SIGKILL)
        serve.process.communicate(timeout=30)
        wait_for(lambda: helpers_of(data_dir) == {"podman": [], "llama": []}, 15, "the helpers to die with the node")

    serve = Serve(data_dir)
    try:
        serve.wait_healthy()
        assert serve.wait_ready(serve.worker).status_code == 200
        assert {kind: len(pids) for kind, pids in helpers_of(data_dir).items()} == {"podman": 1, "llama": 1}
    finally:
        code, stderr = serve.terminate()
    assert code == 0, stderr[-3000:]
    assert helpers_of(data_dir) == {"podman": [], "llama": []}
