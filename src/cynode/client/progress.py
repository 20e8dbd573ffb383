"""A live progress line for ``cynode task create --wait`` on a terminal: spinner, status, elapsed time.

The main thread long-polls the gateway; a small thread redraws the line on stderr ten times a
second, so the spinner moves while a request is held open. When stderr is not a terminal (or with
``--json``) nothing is drawn at all, so scripts see only the answer.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Final, TextIO

FRAMES: Final = "|/-\\"
REDRAW_SECONDS: Final = 0.1


class Progress:
    def __init__(self, stream: TextIO, label: str, *, enabled: bool) -> None:
        self._stream = stream
        self._label = label
        self._enabled = enabled
        self._status = "queued"
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cynode-progress", daemon=True)

    def update(self, status: str) -> None:
        self._status = status

    def __enter__(self) -> Progress:
        if self._enabled:
            self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self._enabled:
            self._stop.set()
            self._thread.join()
            self._stream.write("\r\x1b[2K")  # erase the line so the task's output starts clean
            self._stream.flush()

    def _run(self) -> None:
        frame = 0
        while not self._stop.wait(REDRAW_SECONDS if frame else 0):
            elapsed = time.monotonic() - self._started
            self._stream.write(f"\r\x1b[2K{FRAMES[frame % len(FRAMES)]} {self._label}: {self._status} {elapsed:.1f}s")
            self._stream.flush()
            frame += 1
