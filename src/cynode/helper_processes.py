"""Helper processes (the private podman service, the embedded llama.cpp server) never outlive the node.

Owns two safeguards. Each helper is forked with ``PR_SET_PDEATHSIG`` so the kernel kills it the
moment this process dies, even by ``SIGKILL``; because that signal follows the *thread* that
forked the child, every helper is forked from one spawner thread that lives as long as the
process (never from a short-lived worker thread). And each helper's pid is written to a pid file
in its state directory, so a start-up finds and stops a helper an earlier run left behind (one
whose death signal was lost, or one started by an older build) instead of starting a twin.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_STOP_GRACE_SECONDS = 5.0

_requests: queue.SimpleQueue[tuple[Callable[[], subprocess.Popen[bytes]], Future[subprocess.Popen[bytes]]]] = (
    queue.SimpleQueue()
)
_spawner_lock = threading.Lock()
_spawner: threading.Thread | None = None


def _die_with_parent() -> None:
    # Runs in the child between fork and exec.
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _serve_spawns() -> None:
    while True:
        start, result = _requests.get()
        try:
            result.set_result(start())
        except BaseException as exc:
            result.set_exception(exc)


def spawn(args: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(args, **popen)`` as a child that dies with this process."""
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = threading.Thread(target=_serve_spawns, name="cynode-helper-spawner", daemon=True)
            _spawner.start()
    result: Future[subprocess.Popen[bytes]] = Future()
    _requests.put((lambda: subprocess.Popen(list(args), preexec_fn=_die_with_parent, **popen), result))
    return result.result()


def record(pid_file: Path, pid: int) -> None:
    pid_file.write_text(f"{pid}\n", encoding="ascii")


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def stop_leftover(pid_file: Path, marker: str) -> bool:
    """Stop the helper a previous run recorded in ``pid_file`` if it still runs; True if one did.

    The process must still be what was recorded: its command line must contain ``marker``
    (e.g. its socket path), so a recycled pid is never signalled.
    """
    try:
        pid = int(pid_file.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return False
    pid_file.unlink(missing_ok=True)
    if marker not in _command_line(pid):
        return False
    log.warning("helper_leftover_stopped", extra={"pid": pid, "pid_file": str(pid_file)})
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_GRACE_SECONDS
    while marker in _command_line(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if marker in _command_line(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return True
