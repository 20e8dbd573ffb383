"""A private PostgreSQL cluster kept inside a CyNode data directory.

Owns finding the server binaries, creating the cluster once, starting it (or adopting one that is
already running from an earlier start), and stopping it when this process started it. The server
listens only on a Unix socket in a private directory, and starts with a clean environment (secrets
given to CyNode through ``CYNODE_*`` variables never reach ``/proc/<postgres pid>/environ``).
PostgreSQL refuses to run as root, so as root the cluster is owned and run by the ``postgres``
system user.
"""

from __future__ import annotations

import fcntl
import logging
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

SUPERUSER = "cynode"
DATABASE = "cynode"
SERVER_USER_WHEN_ROOT = "postgres"
# sockaddr_un.sun_path is 108 bytes including the socket file name PostgreSQL appends.
_MAX_SOCKET_DIR = 90


class EmbeddedPostgresError(RuntimeError):
    """The private cluster cannot be set up; the message says how to fix it."""


def find_server_binaries() -> Path:
    """Directory holding ``initdb`` and ``pg_ctl``: ``CYNODE_PG_BIN``, Debian's layout, or PATH."""
    configured = os.environ.get("CYNODE_PG_BIN")
    candidates = [Path(configured)] if configured else []
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(debian)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for candidate in candidates:
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            return candidate
    raise EmbeddedPostgresError(
        "PostgreSQL server binaries not found: install them (Debian: apt-get install postgresql), "
        "set CYNODE_PG_BIN to their directory, or give a database URL (--database-url / CYNODE_DATABASE_URL)"
    )


def server_environment() -> dict[str, str]:
    """The environment the server tools and the server run with: enough to work, and nothing of
    this process's own environment beyond that, since it holds CyNode's secrets."""
    environment = {"PATH": os.environ.get("PATH") or os.defpath, "LC_ALL": "C"}
    if "TZ" in os.environ:
        environment["TZ"] = os.environ["TZ"]
    return environment


@dataclass
class EmbeddedPostgres:
    """One cluster under ``root``; ``start`` returns a DSN, ``stop`` stops it if this object started it."""

    root: Path
    fast_unsafe: bool = False
    """Disable fsync: for throwaway test clusters only."""
    _started_here: bool = False

    @property
    def cluster_dir(self) -> Path:
        return self.root / "postgres"

    def _run_as_server_user(self) -> bool:
        return os.geteuid() == 0

    def _command(self, *argv: str | Path) -> list[str]:
        command = [str(part) for part in argv]
        if self._run_as_server_user():
            return ["runuser", "-u", SERVER_USER_WHEN_ROOT, "--", *command]
        return command

    def _run(self, *argv: str | Path) -> None:
        completed = subprocess.run(
            self._command(*argv), capture_output=True, text=True, check=False, env=server_environment()
        )
        if completed.returncode != 0:
            output = (completed.stderr or completed.stdout).strip().splitlines()[-5:]
            raise EmbeddedPostgresError(f"{Path(str(argv[0])).name} failed: {' / '.join(output)}")

    def _socket_dir(self) -> Path:
        preferred = self.root / "run"
        if len(str(preferred)) <= _MAX_SOCKET_DIR:
            return preferred
        return Path(tempfile.mkdtemp(prefix="cynode-pg-"))

    def _give_to_server_user(self, path: Path) -> None:
        if self._run_as_server_user():
            account = pwd.getpwnam(SERVER_USER_WHEN_ROOT)
            os.chown(path, account.pw_uid, account.pw_gid)

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / "postgres.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _running_socket_dir(self) -> Path | None:
        """Socket directory of a server already running on this cluster, if one is."""
        pid_file = self.cluster_dir / "postmaster.pid"
        try:
            lines = pid_file.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return None
        try:
            os.kill(int(lines[0]), 0)
        except (ProcessLookupError, ValueError, IndexError):
            return None
        except PermissionError:
            pass  # alive, owned by another user
        return Path(lines[4]) if len(lines) > 4 and lines[4] else None

    def dsn(self, socket_dir: Path, database: str = DATABASE) -> str:
        return f"postgresql://{SUPERUSER}@/{database}?host={socket_dir}&port=5432"

    def start(self) -> str:
        """Create the cluster if needed, make sure it runs, and return the DSN of its database."""
        if self._run_as_server_user() and shutil.which("runuser") is None:
            raise EmbeddedPostgresError("running as root needs runuser (util-linux) to start PostgreSQL")
        binaries = find_server_binaries()
        with self._exclusive():
            running = self._running_socket_dir()
            if running is not None:
                log.info("embedded_postgres_adopted", extra={"cluster": str(self.cluster_dir)})
                return self._ensure_database(running)
            if not (self.cluster_dir / "PG_VERSION").exists():
                self._init_cluster(binaries)
            socket_dir = self._socket_dir()
            socket_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._give_to_server_user(socket_dir)
            options = f"-k {socket_dir} -c listen_addresses='' -p 5432"
            if self.fast_unsafe:
                options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            self._run(
                binaries / "pg_ctl", "-D", self.cluster_dir, "-l", self.cluster_dir / "server.log",
                "-o", options, "-w", "-t", "60", "start",
            )  # fmt: skip
            self._started_here = True
            log.info("embedded_postgres_started", extra={"cluster": str(self.cluster_dir)})
            return self._ensure_database(socket_dir)

    def _ensure_database(self, socket_dir: Path) -> str:
        with psycopg.connect(self.dsn(socket_dir, "postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
            if exists is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        return self.dsn(socket_dir)

    def _init_cluster(self, binaries: Path) -> None:
        if self.cluster_dir.exists() and any(self.cluster_dir.iterdir()):
            raise EmbeddedPostgresError(f"{self.cluster_dir} exists but is not a PostgreSQL cluster; move it away")
        self.cluster_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._give_to_server_user(self.cluster_dir)
        if self._run_as_server_user():
            self._check_reachable_by_server_user()
        initdb: list[str | Path] = [
            binaries / "initdb",
            "-D",
            self.cluster_dir,
            "-U",
            SUPERUSER,
            "--auth=trust",
            "-E",
            "UTF8",
        ]
        if self.fast_unsafe:
            initdb.append("--no-sync")
        self._run(*initdb, "--locale=C", "--no-instructions")

    def _check_reachable_by_server_user(self) -> None:
        probe = subprocess.run(self._command("test", "-w", self.cluster_dir), capture_output=True, check=False)
        if probe.returncode != 0:
            raise EmbeddedPostgresError(
                f"the {SERVER_USER_WHEN_ROOT} user cannot reach {self.cluster_dir} (a parent directory is "
                "private); choose a data directory it can traverse, e.g. --data-dir /var/lib/cynode"
            )

    def stop(self) -> None:
        if not self._started_here:
            return
        self._run(find_server_binaries() / "pg_ctl", "-D", self.cluster_dir, "-m", "fast", "-w", "stop")
        self._started_here = False
        log.info("embedded_postgres_stopped", extra={"cluster": str(self.cluster_dir)})
