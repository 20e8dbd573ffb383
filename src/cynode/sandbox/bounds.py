"""Noticing that a job hit one of its bounds, and naming which.

Owns the rules that turn how a container ended into a reason: a job killed by the kernel
(``SIGKILL``, exit 137) that the node did not stop ran out of memory (runc on cgroup v1 does not
report ``OOMKilled``); a job that failed with its workspace quota full hit ``disk_quota``; one that
failed after forks were refused at its process limit hit ``pids``. ``PidsWatch`` reads the
container's pids cgroup (``pids.events`` counts refused forks) while the job runs, and stops a job
that had forks refused and stays at its limit, since a fork bomb retries forever instead of ending.
``LogTrimWatch`` notices that conmon trimmed the container's log at its cap (``max_log_mb``) while
the job ran, which drops output before it can be read back.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from cynode.contracts.reasons import EndReason

log = logging.getLogger(__name__)

KILLED_EXIT_CODE = 128 + 9
_CGROUP_ROOT = Path("/sys/fs/cgroup")
# Often: a job whose first process cannot fork may end within milliseconds of its first refused
# fork, and its cgroup (with the count) goes with it (seen once in CI at 50 ms).
_POLL_SECONDS = 0.01
# A job may sit at its limit for a while (a build forking many compilers, a bomb that stops by
# itself); only one still there after this long (consecutive polls) is stopped.
_STUCK_SECONDS = 5.0
_POLLS_AT_LIMIT = round(_STUCK_SECONDS / _POLL_SECONDS)


def exit_reason(exit_code: int, *, workspace_full: bool, forks_refused: bool) -> EndReason | None:
    """Why a container that exited on its own with ``exit_code`` did not complete; None if it did.

    A job that had forks refused at its process limit hit that bound even when its first process
    exited 0 (a fork bomb's shell returns at once while its children multiply).
    """
    if exit_code == KILLED_EXIT_CODE:
        return "memory"
    if forks_refused:
        return "pids"
    if exit_code == 0:
        return None
    if workspace_full:
        return "disk_quota"
    return "exit_nonzero"


def _pids_file(cgroup_path: str, name: str) -> Path | None:
    relative = cgroup_path.lstrip("/")
    for candidate in (_CGROUP_ROOT / "pids" / relative / name, _CGROUP_ROOT / relative / name):
        if candidate.exists():
            return candidate
    return None


def _failed_forks(events: Path) -> int:
    for line in events.read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == "max":
            return int(value)
    return 0


class PidsWatch:
    """Calls ``on_limit`` once when forks in the cgroup at ``cgroup_path`` keep failing at its limit."""

    def __init__(self, cgroup_path: str, on_limit: Callable[[], None]) -> None:
        self._events = _pids_file(cgroup_path, "pids.events")
        self._current = _pids_file(cgroup_path, "pids.current")
        self._max = _pids_file(cgroup_path, "pids.max")
        self._on_limit = on_limit
        self._done = threading.Event()
        self.forks_refused = False
        """Some fork was refused at the limit while the job ran."""
        self._thread = threading.Thread(target=self._watch, name="sandbox-pids-watch", daemon=True)

    def __enter__(self) -> PidsWatch:
        if self._events is None or self._current is None or self._max is None:
            log.debug("sandbox_pids_cgroup_not_found")
        else:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop watching (again is harmless); ``forks_refused`` is final from here on."""
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()
        if self._events is not None and not self.forks_refused:
            # A last look, for a job that ended between two polls while its cgroup is still there.
            with contextlib.suppress(OSError, ValueError):
                self.forks_refused = _failed_forks(self._events) > 0

    @classmethod
    def unwatched(cls) -> PidsWatch:
        """A watch of nothing (no process limit, or no cgroup to read)."""
        return cls("", lambda: None)

    def _watch(self) -> None:
        assert self._events is not None
        assert self._current is not None
        assert self._max is not None
        try:
            limit = int(self._max.read_text())
        except (OSError, ValueError):
            return  # "max": no limit to watch
        at_limit = 0
        # Read before the first wait: a job that has forks refused and ends at once leaves its
        # cgroup (and the count) only moments after.
        while True:
            try:
                self.forks_refused = self.forks_refused or _failed_forks(self._events) > 0
                stuck = self.forks_refused and int(self._current.read_text()) >= limit
            except (OSError, ValueError):
                return  # the cgroup is gone: the container stopped
            at_limit = at_limit + 1 if stuck else 0
            if at_limit >= _POLLS_AT_LIMIT:
                self._on_limit()
                return
            if self._done.wait(_POLL_SECONDS):
                return


class LogTrimWatch:
    """Whether conmon trimmed the container log at ``log_path`` between ``__enter__`` and ``trimmed``.

    conmon trims a full log by renaming a fresh file over it, so the file opened here before the
    job starts is no longer the one at the path. Holding it open also keeps its inode number from
    going to a later file, which would hide a trim. A log this process cannot open (no path, or a
    podman service whose files it cannot see) tells nothing: ``trimmed`` stays False.
    """

    def __init__(self, log_path: str | None) -> None:
        self._path = log_path
        self._held: BinaryIO | None = None

    def __enter__(self) -> LogTrimWatch:
        if self._path:
            try:
                self._held = open(self._path, "rb")
            except OSError as exc:
                log.debug("sandbox_log_not_watched", extra={"log_path": self._path, "error": str(exc)})
        return self

    def __exit__(self, *_: object) -> None:
        if self._held is not None:
            self._held.close()

    @property
    def trimmed(self) -> bool:
        if self._held is None or self._path is None:
            return False
        held = os.fstat(self._held.fileno())
        try:
            current = os.stat(self._path)
        except OSError:
            return True  # gone from its path: replaced, or removed with its container
        return (current.st_dev, current.st_ino) != (held.st_dev, held.st_ino)
