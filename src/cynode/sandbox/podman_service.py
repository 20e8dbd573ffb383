"""The podman API service the sandbox executor talks to.

Owns ``containers.conf`` generation for this host and the lifetime of a private
``podman system service`` listening on a Unix socket under the node's state directory. The
generated configuration picks what works on the host rather than podman's defaults: ``runc``
when installed (``crun`` cannot run containers on a cgroup v1/hybrid host), the ``cgroupfs``
manager when systemd is not init, file-based events, ``k8s-file`` logs (which the executor reads
back through the API) and default ulimits within the host's hard limits. The service dies with
the node process, and a start-up stops one an earlier run left (``cynode.helper_processes``).
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import subprocess
import time
from pathlib import Path

from podman import PodmanClient
from podman.errors import APIError

from cynode import helper_processes

log = logging.getLogger(__name__)

# sockaddr_un.sun_path is 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107
_DEFAULT_ULIMIT = 1024
# Only what podman itself needs is passed on: the node's own environment may hold secrets.
_INHERITED_ENV = ("PATH", "HOME", "TMPDIR", "XDG_RUNTIME_DIR", "CONTAINERS_STORAGE_CONF", "LANG")


class PodmanUnavailableError(RuntimeError):
    """The podman API cannot be started or reached; the message says what to install or fix."""


def _host_hard_limit(kind: int) -> int:
    hard = resource.getrlimit(kind)[1]
    return hard if hard != resource.RLIM_INFINITY else 1 << 20


def containers_conf() -> str:
    """A ``containers.conf`` suited to this host (see the module docstring)."""
    runtime = "runc" if shutil.which("runc") else "crun"
    cgroup_manager = "systemd" if Path("/run/systemd/system").is_dir() else "cgroupfs"
    nofile = min(_DEFAULT_ULIMIT, _host_hard_limit(resource.RLIMIT_NOFILE))
    nproc = min(_DEFAULT_ULIMIT, _host_hard_limit(resource.RLIMIT_NPROC))
    return (
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        'cgroups = "enabled"\n'
        'log_driver = "k8s-file"\n'
        "[engine]\n"
        f'runtime = "{runtime}"\n'
        f'cgroup_manager = "{cgroup_manager}"\n'
        'events_logger = "file"\n'
    )


def ping(url: str, timeout: float = 5.0) -> bool:
    """True when a podman API answers at ``url``."""
    try:
        with PodmanClient(base_url=url, timeout=timeout) as client:
            return bool(client.ping())
    except (APIError, OSError):
        return False


class PodmanService:
    """A podman API endpoint: the node's own service under ``state_dir``, or a configured socket.

    ``start`` and ``stop`` block; call them from a worker thread in async code.
    """

    def __init__(self, state_dir: Path, *, socket_url: str | None = None, podman: str = "podman") -> None:
        self._dir = state_dir / "podman"
        self._external_url = socket_url
        self._podman = podman
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self._dir / "podman.sock"

    @property
    def config_path(self) -> Path:
        """The generated containers.conf (written by ``start`` of a managed service)."""
        return self._dir / "containers.conf"

    @property
    def url(self) -> str:
        return self._external_url or f"unix://{self.socket_path}"

    @property
    def pid(self) -> int | None:
        """Process id of the private service while it runs."""
        return self._process.pid if self._process is not None else None

    @property
    def managed(self) -> bool:
        """True when this object runs the service (rather than using a configured socket)."""
        return self._external_url is None

    def problem(self) -> str | None:
        """None while the API can serve, else why it cannot (one line)."""
        if self._process is not None and self._process.poll() is not None:
            return f"podman API service exited with status {self._process.returncode} (see {self._log_path})"
        if not ping(self.url):
            return f"podman API at {self.url} does not answer"
        return None

    @property
    def _log_path(self) -> Path:
        return self._dir / "service.log"

    @property
    def _pid_file(self) -> Path:
        return self._dir / "service.pid"

    def start(self, timeout: float = 30.0) -> None:
        """Make the API reachable: start the private service, or check the configured socket."""
        if not self.managed:
            if not ping(self.url):
                raise PodmanUnavailableError(f"podman API at {self.url} does not answer")
            return
        if self._process is not None:
            return
        binary = shutil.which(self._podman)
        if binary is None:
            raise PodmanUnavailableError(
                "podman is not installed; run scripts/build-sandbox-image.sh (it installs podman and runc) "
                "or apt-get install -y podman runc"
            )
        if len(str(self.socket_path)) > _MAX_SOCKET_PATH:
            raise PodmanUnavailableError(f"podman socket path {self.socket_path} is too long for a Unix socket")
        self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.config_path.write_text(containers_conf(), encoding="utf-8")
        helper_processes.stop_leftover(self._pid_file, str(self.socket_path))
        self.socket_path.unlink(missing_ok=True)
        env = {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}
        env["CONTAINERS_CONF"] = str(self.config_path)
        with self._log_path.open("ab") as service_log:
            self._process = helper_processes.spawn(
                [binary, "system", "service", "--time=0", self.url],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=service_log,
                stderr=service_log,
                start_new_session=True,
                # conmon leaves files (an "oom" marker after an OOM kill) in its working directory.
                cwd=self._dir,
            )
        helper_processes.record(self._pid_file, self._process.pid)
        log.info("podman_service_starting", extra={"pid": self._process.pid, "socket": str(self.socket_path)})
        self._wait_until_ready(timeout)

    def _wait_until_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                status = self._process.returncode
                self._process = None
                raise PodmanUnavailableError(f"podman system service exited with status {status}: {self._log_tail()}")
            if self.socket_path.exists() and ping(self.url, timeout=2.0):
                log.info("podman_service_ready", extra={"pid": self._process.pid})
                return
            time.sleep(0.05)
        self.stop()
        raise PodmanUnavailableError(f"podman system service did not answer within {timeout:.0f}s")

    def _log_tail(self) -> str:
        try:
            lines = self._log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        except OSError:
            return "(no service log)"
        return lines[-1] if lines else "(empty service log)"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the private service (containers it started keep their own conmon processes)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        self.socket_path.unlink(missing_ok=True)
        self._pid_file.unlink(missing_ok=True)
        log.info("podman_service_stopped", extra={"pid": process.pid, "status": process.returncode})
