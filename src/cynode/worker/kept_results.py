"""Job results a node keeps until an orchestrator acknowledges them.

An answer sent to an orchestrator that died before storing it would otherwise be lost, and the job
run again. So every finished job's ``RunJobResponse`` (and the attempt it answered) is written to
a file under the node's state directory before it is sent, and stays there, across node restarts,
until an orchestrator acks it (``POST /v1/worker/jobs/{id}:ack``) or it is older than the
retention time. The store is bounded: beyond ``max_results`` files or ``max_bytes`` in all, the
oldest results are dropped (and logged), so an orchestrator that never acks cannot fill the disk.

File names are a hash of the job id, so any id a caller sends maps to one safe name; files are
replaced atomically, so a crash never leaves half a result behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec

from cynode.contracts.codec import PayloadError, decode, encode
from cynode.contracts.worker import RunJobResponse

log = logging.getLogger(__name__)

DEFAULT_RETENTION_SECONDS: Final = 24 * 3600.0
DEFAULT_MAX_RESULTS: Final = 1000
DEFAULT_MAX_BYTES: Final = 256 * 1024 * 1024
_SUFFIX: Final = ".json"


class KeptResult(msgspec.Struct, kw_only=True):
    """One kept file: the attempt that ran and the answer it got."""

    attempt: int
    response: RunJobResponse


@dataclass(frozen=True)
class _Entry:
    path: Path
    size: int
    kept_at: float


class KeptResults:
    """The results kept in ``directory``; every method is blocking file I/O (call it off the loop)."""

    def __init__(
        self,
        directory: Path,
        *,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
        max_results: int = DEFAULT_MAX_RESULTS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if retention_seconds <= 0 or max_results <= 0 or max_bytes <= 0:
            raise ValueError("kept results need a positive retention time, result count and byte budget")
        self.directory = directory
        self._retention = retention_seconds
        self._max_results = max_results
        self._max_bytes = max_bytes

    def _path(self, job_id: str) -> Path:
        return self.directory / (hashlib.sha256(job_id.encode()).hexdigest() + _SUFFIX)

    def keep(self, attempt: int, response: RunJobResponse) -> None:
        """Write the result durably, then drop expired and over-budget ones."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._path(response.job_id)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(encode(KeptResult(attempt=attempt, response=response)))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        self.prune()

    def get(self, job_id: str) -> KeptResult | None:
        """The kept result of ``job_id``; None when there is none (or it expired)."""
        path = self._path(job_id)
        try:
            if time.time() - path.stat().st_mtime > self._retention:
                self._drop(path, "expired")
                return None
            kept = decode(path.read_bytes(), KeptResult)
        except FileNotFoundError:
            return None
        except PayloadError as exc:
            log.warning("kept_result_unreadable", extra={"file": path.name, "error": str(exc)})
            self._drop(path, "unreadable")
            return None
        # A hash collision is not a realistic event, but the answer must be about this job.
        return kept if kept.response.job_id == job_id else None

    def acknowledge(self, job_id: str) -> bool:
        """Drop the job's result; False when none was kept."""
        try:
            self._path(job_id).unlink()
        except FileNotFoundError:
            return False
        return True

    def prune(self) -> None:
        """Drop results past the retention time, then the oldest until count and size fit."""
        now = time.time()
        entries: list[_Entry] = []
        for path in self.directory.glob("*" + _SUFFIX):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            if now - stat.st_mtime > self._retention:
                self._drop(path, "expired")
            else:
                entries.append(_Entry(path, stat.st_size, stat.st_mtime))
        entries.sort(key=lambda entry: entry.kept_at)
        total = sum(entry.size for entry in entries)
        while entries and (len(entries) > self._max_results or total > self._max_bytes):
            oldest = entries.pop(0)
            total -= oldest.size
            self._drop(oldest.path, "over_budget")

    @staticmethod
    def _drop(path: Path, why: str) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            return
        log.warning("kept_result_dropped", extra={"file": path.name, "why": why})
