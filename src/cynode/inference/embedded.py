"""The embedded backend: llama.cpp's OpenAI-compatible server as a child process of the node.

Owns that process: it serves the GGUF model from the settings on a Unix socket in the node's
state directory (no TCP port, so no other host user or container can reach it), is ready once
``/v1/models`` answers, writes its own log beside the socket, and is stopped with the node. It
gets only the environment it needs, never the node's own (which may hold secrets). It dies with
the node process, and a start-up stops one an earlier run left (``cynode.helper_processes``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from cynode import helper_processes
from cynode.inference.errors import InferenceStartError
from cynode.inference.settings import InferenceSettings
from cynode.inference.upstream import available_models, unix_socket_url

log = logging.getLogger(__name__)

SOCKET_NAME = "llama.sock"
LOG_NAME = "llama-server.log"
PID_FILE_NAME = "llama-server.pid"
# sockaddr_un.sun_path is 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107
_POLL_SECONDS = 0.1
_STOP_GRACE_SECONDS = 5.0
_LOG_TAIL_LINES = 5
_INHERITED_ENV = ("PATH", "HOME", "LANG", "TMPDIR")


def embedded_problem(settings: InferenceSettings) -> str | None:
    """Why the embedded backend cannot run on this host, or None when it can."""
    if importlib.util.find_spec("llama_cpp") is None:
        return "llama-cpp-python is not installed (run scripts/bootstrap, which builds it for this CPU)"
    if not settings.embedded_model_path.is_file():
        return (
            f"the embedded model {settings.embedded_model_path} does not exist "
            "(run scripts/fetch-model.sh or set inference.embedded_model_path)"
        )
    return None


class EmbeddedServer:
    """The llama.cpp server child process; ``run_dir`` holds its socket and log."""

    def __init__(self, settings: InferenceSettings, run_dir: Path) -> None:
        self.settings = settings
        self.socket_path = run_dir / SOCKET_NAME
        self.log_path = run_dir / LOG_NAME
        self._pid_file = run_dir / PID_FILE_NAME
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return unix_socket_url(str(self.socket_path))

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    async def start(self) -> None:
        """Start the server and wait until it answers; raises InferenceStartError with the reason."""
        if self.alive():
            return
        problem = embedded_problem(self.settings)
        if problem is None and len(str(self.socket_path)) > _MAX_SOCKET_PATH:
            problem = (
                f"socket path {self.socket_path} is longer than {_MAX_SOCKET_PATH} bytes (use a shorter state dir)"
            )
        if problem is not None:
            raise InferenceStartError(f"embedded llama.cpp backend unavailable: {problem}")
        self.socket_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        helper_processes.stop_leftover(self._pid_file, str(self.socket_path))
        self.socket_path.unlink(missing_ok=True)
        started = time.monotonic()
        self._process = self._spawn()
        helper_processes.record(self._pid_file, self._process.pid)
        try:
            await self._wait_ready(started)
        except InferenceStartError:
            await self.stop()
            raise
        log.info(
            "embedded_inference_started",
            extra={
                "model": self.settings.embedded_model_alias,
                "socket": str(self.socket_path),
                "pid": self._process.pid,
                "seconds": round(time.monotonic() - started, 2),
            },
        )

    def _spawn(self) -> subprocess.Popen[bytes]:
        with self.log_path.open("wb") as log_file:
            return helper_processes.spawn(
                self._command(), env=self._environment(), stdout=log_file, stderr=subprocess.STDOUT
            )

    def _command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "llama_cpp.server.app:create_app",
            "--uds",
            str(self.socket_path),
            "--log-level",
            "warning",
            "--no-access-log",
        ]

    def _environment(self) -> dict[str, str]:
        env = {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}
        # llama_cpp.server reads its model settings from the environment when built by the factory.
        env.update(
            MODEL=str(self.settings.embedded_model_path),
            MODEL_ALIAS=self.settings.embedded_model_alias,
            N_THREADS=str(self.settings.embedded_threads),
            VERBOSE="false",
            # A new request must queue behind a running stream, not cut it off (chat and sandbox jobs share it).
            INTERRUPT_REQUESTS="false",
        )
        return env

    async def _wait_ready(self, started: float) -> None:
        assert self._process is not None
        deadline = started + self.settings.start_timeout_seconds
        while await available_models(self.url) is None:
            if self._process.poll() is not None:
                raise InferenceStartError(
                    f"embedded llama.cpp server exited with code {self._process.returncode}: {self._log_tail()}"
                )
            if time.monotonic() > deadline:
                raise InferenceStartError(
                    f"embedded llama.cpp server did not answer within {self.settings.start_timeout_seconds:g} s: "
                    f"{self._log_tail()}"
                )
            await asyncio.sleep(_POLL_SECONDS)

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-_LOG_TAIL_LINES:]) or "(empty log)"

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            await asyncio.to_thread(process.wait, _STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)
        self.socket_path.unlink(missing_ok=True)
        self._pid_file.unlink(missing_ok=True)
        log.info("embedded_inference_stopped", extra={"pid": process.pid})
