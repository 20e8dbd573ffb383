"""Secrets: read from ``CYNODE_<NAME>`` or the file named by ``CYNODE_<NAME>_FILE``, never from YAML.

Owns how a secret is found and, for secrets a lone install may invent (JWT signing key, the
at-rest encryption key), how it is generated once and kept in ``<data_dir>/secrets`` with mode
0600 so restarts keep working. Values are never logged; errors name the source, not the value.
"""

from __future__ import annotations

import base64
import os
import secrets as random_source
from collections.abc import Mapping
from pathlib import Path

from cynode.settings import ENV_PREFIX, SettingsError


def read_secret(name: str, env: Mapping[str, str] | None = None) -> str | None:
    """The secret ``name`` from env or its ``_FILE`` variant; None when neither is set."""
    env = os.environ if env is None else env
    variable = ENV_PREFIX + name.upper()
    file_variable = variable + "_FILE"
    if env.get(variable):
        return env[variable]
    path = env.get(file_variable)
    if not path:
        return None
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SettingsError(f"cannot read {file_variable}={path}: {exc.strerror}") from exc
    if not value:
        raise SettingsError(f"{file_variable}={path} is empty")
    return value


def secrets_dir(data_dir: Path) -> Path:
    path = data_dir / "secrets"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def persistent_secret(name: str, data_dir: Path, env: Mapping[str, str] | None = None, nbytes: int = 32) -> str:
    """The configured secret ``name``, else one generated on first use and kept in the data dir."""
    configured = read_secret(name, env)
    if configured:
        return configured
    path = secrets_dir(data_dir) / name
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    value = base64.urlsafe_b64encode(random_source.token_bytes(nbytes)).decode().rstrip("=")
    temporary = path.with_name(f".{name}.{os.getpid()}.{random_source.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value)
    try:
        # link() refuses to overwrite, so when two processes race the first one's secret wins.
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink(missing_ok=True)
    return path.read_text(encoding="utf-8").strip()
