"""``cynode doctor``: checks that this host can run CyNode, each failure with the exact fix.

Checks: podman (binary, OCI runtime for the cgroup version, ulimits, API service), the sandbox
image, the embedded inference backend and its model, PostgreSQL (reachability and version for a
configured URL; server binaries and a data directory the server user can traverse for the embedded
one), the listen ports, the data directory's permissions, and the clock. Checks that need podman
are reported failed (not skipped) when it is missing, so the first fix is always named.
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import click
import msgspec
import psycopg

from cynode.db.embedded import SERVER_USER_WHEN_ROOT, EmbeddedPostgresError, find_server_binaries
from cynode.inference.embedded import embedded_problem
from cynode.inference.settings import InferenceSettings
from cynode.sandbox.podman_service import PodmanService, PodmanUnavailableError
from cynode.settings import ListenSettings, Settings

INSTALL_PODMAN: Final = "install podman and runc: apt-get install -y podman runc (Debian/Ubuntu)"
MIN_POSTGRES_VERSION: Final = 140000
MAX_CLOCK_SKEW_SECONDS: Final = 2.0
SANDBOX_ULIMIT: Final = 1024
"""The nofile/nproc limit CyNode's containers.conf gives sandboxes (capped by the host's hard limit)."""


class Check(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: str
    ok: bool
    detail: str
    fix: str | None = None


def passed(name: str, detail: str) -> Check:
    return Check(name=name, ok=True, detail=detail)


def failed(name: str, detail: str, fix: str) -> Check:
    return Check(name=name, ok=False, detail=detail, fix=fix)


def _podman_missing(name: str) -> Check:
    return failed(name, "needs podman, which is not on PATH", INSTALL_PODMAN)


def check_podman_binary() -> Check:
    binary = shutil.which("podman")
    if binary is None:
        return failed("podman", "podman is not on PATH", INSTALL_PODMAN)
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return passed("podman", f"{binary} ({version or 'version unknown'})")


def cgroup_version() -> int:
    return 2 if Path("/sys/fs/cgroup/cgroup.controllers").is_file() else 1


def check_runtime() -> Check:
    if shutil.which("podman") is None:
        return _podman_missing("container runtime")
    version = cgroup_version()
    if shutil.which("runc"):
        return passed("container runtime", f"runc on cgroup v{version}")
    if version == 1:
        return failed(
            "container runtime",
            "runc is missing and crun cannot run containers on this cgroup v1/hybrid host",
            "apt-get install -y runc",
        )
    return passed("container runtime", "crun on cgroup v2")


def check_ulimits() -> Check:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < SANDBOX_ULIMIT:
        return failed(
            "ulimits",
            f"the host's hard open-files limit is {hard}, below the {SANDBOX_ULIMIT} sandboxes get",
            f"raise it for the service (systemd: LimitNOFILE={SANDBOX_ULIMIT * 64}; shell: ulimit -Hn 65536 as root)",
        )
    shown = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    return passed("ulimits", f"sandboxes get nofile={SANDBOX_ULIMIT} (host hard limit {shown})")


def check_podman_service() -> Check:
    if shutil.which("podman") is None:
        return _podman_missing("podman service")
    with tempfile.TemporaryDirectory(prefix="cynode-doctor-") as state:
        service = PodmanService(Path(state))
        try:
            service.start(timeout=20)
        except PodmanUnavailableError as exc:
            return failed("podman service", str(exc), "run `podman --log-level=debug info` and fix what it reports")
        try:
            return passed("podman service", "a private `podman system service` started and answered")
        finally:
            service.stop()


def check_sandbox_image(image: str) -> Check:
    binary = shutil.which("podman")
    if binary is None:
        return _podman_missing("sandbox image")
    exists = subprocess.run([binary, "image", "exists", image], capture_output=True, check=False)
    if exists.returncode != 0:
        return failed("sandbox image", f"{image} is not in podman's image store", "cynode sandbox build-image")
    return passed("sandbox image", image)


def check_inference(settings: InferenceSettings) -> Check:
    problem = embedded_problem(settings)
    if problem is not None:
        return failed("inference", problem, "run scripts/bootstrap (or pip install 'cynode[inference]'), then "
                      "scripts/fetch-model.sh")  # fmt: skip
    return passed("inference", f"embedded llama.cpp with {settings.embedded_model_path}")


def _traversal_problem(path: Path) -> Path | None:
    """The first directory on the way to ``path`` the PostgreSQL server user could not enter, if any."""
    for directory in [*reversed(path.parents), path]:
        if not directory.exists():
            return None
        mode = directory.stat().st_mode
        if not mode & 0o001:
            return directory
    return None


def check_database(settings: Settings) -> list[Check]:
    """Reachability, version and clock of a configured database; server binaries and paths for the embedded one."""
    if settings.database_url:
        try:
            with psycopg.connect(settings.database_url, connect_timeout=5) as conn:
                row = conn.execute("SELECT current_setting('server_version_num')::int, now()").fetchone()
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0]
            fix = "check --database-url (host, port, user, password, database) and that the server runs"
            return [failed("postgresql", f"cannot connect: {reason}", fix)]
        assert row is not None
        version, server_now = row
        checks = [
            passed("postgresql", f"reachable, server version {version}")
            if version >= MIN_POSTGRES_VERSION
            else failed("postgresql", f"server version {version} is too old", "upgrade to PostgreSQL 14 or later")
        ]
        skew = abs((server_now - datetime.now(UTC)).total_seconds())
        checks.append(
            passed("clock", f"within {skew:.2f} s of the database's clock")
            if skew <= MAX_CLOCK_SKEW_SECONDS
            else failed(
                "clock",
                f"{skew:.1f} s off the database's clock (tokens and leases depend on it)",
                "enable time sync on both hosts: apt-get install -y systemd-timesyncd (or chrony)",
            )
        )
        return checks
    try:
        binaries = find_server_binaries()
    except EmbeddedPostgresError as exc:
        return [failed("postgresql", str(exc), "apt-get install -y postgresql (or pass --database-url)")]
    checks = [passed("postgresql", f"embedded server binaries in {binaries}")]
    if os.geteuid() == 0:
        private = _traversal_problem(settings.data_dir)
        if shutil.which("runuser") is None:
            checks.append(failed("data dir", "running as root needs runuser to start the embedded server",
                                 "apt-get install -y util-linux"))  # fmt: skip
        elif private is not None:
            checks.append(failed(
                "data dir",
                f"{private} is private: the {SERVER_USER_WHEN_ROOT} user running the embedded database cannot "
                f"traverse it to {settings.data_dir}",
                f"chmod o+x {private}, or choose a data directory it can reach: --data-dir /var/lib/cynode",
            ))  # fmt: skip
    checks.append(passed("clock", f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC (no database URL to compare with)"))
    return checks


def check_data_dir(data_dir: Path) -> Check:
    target = data_dir if data_dir.exists() else next(p for p in data_dir.parents if p.exists())
    if not os.access(target, os.W_OK | os.X_OK):
        return failed("data dir", f"{target} is not writable by this user", f"chown {os.getuid()} {target} "
                      "or choose another --data-dir")  # fmt: skip
    return passed("data dir", f"{data_dir} (writable)")


def check_port(name: str, listen: ListenSettings, setting: str) -> Check:
    with socket.socket(socket.AF_INET6 if ":" in listen.host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((listen.host, listen.port))
        except OSError as exc:
            return failed(f"port {name}", f"{listen.host}:{listen.port} is taken ({exc.strerror})",
                          f"stop whatever listens there, or --set {setting}=<free port>")  # fmt: skip
    return passed(f"port {name}", f"{listen.host}:{listen.port} is free")


def run_checks(settings: Settings, inference: InferenceSettings | None = None) -> list[Check]:
    steps: list[Callable[[], Check | list[Check]]] = [
        check_podman_binary,
        check_runtime,
        check_ulimits,
        check_podman_service,
        lambda: check_sandbox_image(settings.dispatch.sandbox_image),
        lambda: check_inference(inference or InferenceSettings()),
        lambda: check_data_dir(settings.data_dir),
        lambda: check_database(settings),
        lambda: check_port("gateway", settings.gateway, "gateway.port"),
        lambda: check_port("control plane", settings.control_plane, "control_plane.port"),
        lambda: check_port("worker api", settings.worker_api, "worker_api.port"),
    ]
    checks: list[Check] = []
    for step in steps:
        result = step()
        checks.extend(result if isinstance(result, list) else [result])
    return checks


def report_checks(checks: list[Check], as_json: bool) -> None:
    if as_json:
        click.echo(msgspec.json.format(msgspec.json.encode({"ok": all(c.ok for c in checks), "checks": checks})))
        return
    for check in checks:
        click.echo(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
        if check.fix:
            click.echo(f"     fix: {check.fix}")
