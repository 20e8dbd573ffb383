"""The node's memory of which ``config_version`` it applied, kept across restarts.

Versions are ULIDs, so later versions sort after earlier ones; a node refuses a config that sorts
before the one it applied (an orchestrator restored from an old backup, a replayed response).
The file is replaced atomically so a crash never leaves a half-written version behind.
"""

from __future__ import annotations

import os
from pathlib import Path

_FILE_NAME = "applied_config_version"


class StaleConfigError(RuntimeError):
    """The orchestrator offered a config older than the one this node already applied."""

    def __init__(self, offered: str, applied: str) -> None:
        super().__init__(
            f"config_version {offered} is older than the already applied {applied}; refusing to go back to it"
        )
        self.offered = offered
        self.applied = applied


class AppliedConfigStore:
    def __init__(self, state_dir: Path) -> None:
        self._path = state_dir / _FILE_NAME

    def applied_version(self) -> str | None:
        try:
            return self._path.read_text(encoding="ascii").strip() or None
        except FileNotFoundError:
            return None

    def check_not_older(self, offered: str) -> None:
        """Raise StaleConfigError when ``offered`` sorts before the applied version."""
        applied = self.applied_version()
        if applied is not None and offered < applied:
            raise StaleConfigError(offered, applied)

    def record(self, version: str) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = self._path.with_name(f".{_FILE_NAME}.{os.getpid()}.tmp")
        temporary.write_text(version + "\n", encoding="ascii")
        os.replace(temporary, self._path)
