"""Where the CLI keeps its session: gateway URL and token pair in a file only the user can read.

The file is ``$XDG_CONFIG_HOME/cynode/credentials.json`` (``~/.config/cynode/...`` without the
variable), mode 0600 inside a 0700 directory, replaced atomically so a crash never leaves half a token.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from cynode.contracts.codec import PayloadError, decode, encode

__all__ = ["Credentials", "credentials_path", "delete_credentials", "load_credentials", "save_credentials"]

_FILE_MODE = 0o600
_DIR_MODE = 0o700


class Credentials(msgspec.Struct, kw_only=True):
    """One signed-in session; the tokens are secrets and are never printed."""

    gateway_url: str
    access_token: str
    refresh_token: str

    def __repr__(self) -> str:
        # Keeps tokens out of tracebacks and debug output.
        return f"Credentials(gateway_url={self.gateway_url!r})"


def credentials_path() -> Path:
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "cynode" / "credentials.json"


def load_credentials() -> Credentials | None:
    """The stored session, or None when nobody is logged in (or the file is unreadable garbage)."""
    try:
        return decode(credentials_path().read_bytes(), Credentials)
    except (FileNotFoundError, PayloadError):
        return None


def save_credentials(credentials: Credentials) -> None:
    path = credentials_path()
    path.parent.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    # mkdir's mode is masked by the umask and ignored for an existing directory.
    path.parent.chmod(_DIR_MODE)
    staging = path.with_suffix(".tmp")
    staging.unlink(missing_ok=True)
    # Created 0600 from the start, so the tokens are never readable by others even for a moment.
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _FILE_MODE)
    with os.fdopen(descriptor, "wb") as staged:
        staged.write(encode(credentials))
    os.replace(staging, path)


def delete_credentials() -> None:
    credentials_path().unlink(missing_ok=True)
