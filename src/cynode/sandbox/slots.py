"""The node's concurrency slots: which jobs run here now, and stopping them.

Owns the rule that at most ``max_concurrency`` jobs run at once and that one job id runs at most
once at a time, and each running job's stop state: the first reason a job is stopped for wins,
and a job that already finished cannot be relabelled by a late cancel or deadline.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

StopReason = Literal["timeout", "canceled", "shutdown", "pids"]
"""Why the node killed a job's container (``pids``: it hit its process limit)."""


class SandboxBusyError(RuntimeError):
    """Every concurrency slot is taken."""


class JobAlreadyRunningError(RuntimeError):
    """A job with this id is running on this node right now."""


@dataclass
class RunningJob:
    """A reserved concurrency slot and, once created, the job's container.

    Use as a context manager around ``SandboxExecutor.run``: leaving it frees the slot.
    """

    job_id: str
    _release: Callable[[RunningJob], None]
    _kill: Callable[[str], None]
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _container_id: str | None = None
    _finished: bool = False
    _preamble: list[str] = field(default_factory=list)
    stop_reason: StopReason | None = None

    def __enter__(self) -> RunningJob:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._release(self)

    def stop(self, reason: StopReason) -> None:
        """Kill the job's container (now, or as soon as it exists); the first reason wins."""
        with self._lock:
            if self.stop_reason is not None or self._finished:
                return
            self.stop_reason = reason
            container_id = self._container_id
        if container_id is not None:
            self._kill(container_id)

    def finish(self) -> StopReason | None:
        """Seal the job after its container stopped; returns why it was stopped, if it was."""
        with self._lock:
            self._finished = True
            return self.stop_reason

    @property
    def container_id(self) -> str | None:
        """The job's container once created (a live output read looks there)."""
        with self._lock:
            return self._container_id

    @property
    def finished(self) -> bool:
        """True once its container stopped: what it wrote is final and goes out with its result."""
        with self._lock:
            return self._finished

    def note(self, line: str) -> None:
        """Add a ``[cynode]`` line to what precedes the job's own stderr (e.g. its image pull)."""
        with self._lock:
            self._preamble.append(f"[cynode] {line}\n")

    @property
    def preamble(self) -> bytes:
        """The node's lines ahead of the job's stderr, live and in its result alike."""
        with self._lock:
            return "".join(self._preamble).encode()

    def attach(self, container_id: str) -> bool:
        """Record the container; False if the job was stopped before it existed."""
        with self._lock:
            self._container_id = container_id
            return self.stop_reason is None


class Slots:
    """The jobs running on this node; ``kill`` stops a container by id."""

    def __init__(self, max_concurrency: int, kill: Callable[[str], None]) -> None:
        self._max = max_concurrency
        self._kill = kill
        self._lock = threading.Lock()
        self._running: dict[str, RunningJob] = {}

    def reserve(self, job_id: str) -> RunningJob:
        """Take a slot for ``job_id`` without waiting."""
        with self._lock:
            if job_id in self._running:
                raise JobAlreadyRunningError(job_id)
            if len(self._running) >= self._max:
                raise SandboxBusyError(job_id)
            job = self._running[job_id] = self.unlisted(job_id)
        return job

    def unlisted(self, job_id: str) -> RunningJob:
        """A job handle outside the slot count (the runtime probe)."""
        return RunningJob(job_id, self._release, self._kill)

    def _release(self, job: RunningJob) -> None:
        with self._lock:
            if self._running.get(job.job_id) is job:
                del self._running[job.job_id]

    def running(self, job_id: str) -> RunningJob | None:
        with self._lock:
            return self._running.get(job_id)

    def all(self) -> list[RunningJob]:
        with self._lock:
            return list(self._running.values())
