"""What the node keeps across restarts: the ``config_version`` it applied, and its node secret.

Versions are ULIDs, so later versions sort after earlier ones; a node refuses a config that sorts
before the one it applied (an orchestrator restored from an old backup, a replayed response).
Files are replaced atomically so a crash never leaves a half-written value behind. The node
secret (issued by the orchestrator at the slug's first registration, needed to register it again)
is readable by the node's user only.
"""

from __future__ import annotations

import os
from pathlib import Path

_FILE_NAME = "applied_config_version"
_SECRET_FILE_NAME = "node_secret"  # noqa: S105 - a file name, not a secret


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip() or None
    except FileNotFoundError:
        return None


def _replace(path: Path, text: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text)
    os.replace(temporary, path)


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
        return _read(self._path)

    def check_not_older(self, offered: str) -> None:
        """Raise StaleConfigError when ``offered`` sorts before the applied version."""
        applied = self.applied_version()
        if applied is not None and offered < applied:
            raise StaleConfigError(offered, applied)

    def record(self, version: str) -> None:
        _replace(self._path, version + "\n", 0o644)


class NodeSecretStore:
    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / _SECRET_FILE_NAME

    def secret(self) -> str | None:
        return _read(self.path)

    def record(self, secret: str) -> None:
        _replace(self.path, secret + "\n", 0o600)
