"""Typed settings for every role, merged from flags > ``CYNODE_*`` env > YAML file > defaults.

Owns the settings schema's top level, where each value comes from, and the error a bad value
produces (naming the setting and its source). Each domain owns its own section struct. Secrets are
not settings: they come only from the environment or files (see ``cynode.secrets``), and a YAML
file that tries to carry them is refused.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import msgspec
import yaml

from cynode.chat.settings import ChatSettings
from cynode.dispatch.settings import DispatchSettings
from cynode.identity.settings import IdentitySettings
from cynode.nodes.settings import NodePolicySettings
from cynode.tls import TlsError, client_context, normalize_pin

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
ByteCount = Annotated[int, msgspec.Meta(gt=0)]

DEFAULT_MAX_REQUEST_BYTES = 10 * 1024 * 1024
ENV_PREFIX = "CYNODE_"


class Role(StrEnum):
    ORCHESTRATOR = "orchestrator"
    GATEWAY = "gateway"
    NODE = "node"


class ListenSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    port: Port
    max_request_bytes: ByteCount = DEFAULT_MAX_REQUEST_BYTES
    tls_cert_file: Path | None = None
    """PEM certificate chain; with ``tls_key_file`` the listener serves HTTPS only."""
    tls_key_file: Path | None = None

    def __post_init__(self) -> None:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together: give both or neither")

    @property
    def scheme(self) -> str:
        return "https" if self.tls_cert_file is not None else "http"


class ControlPlaneSettings(ListenSettings, kw_only=True, forbid_unknown_fields=True):
    port: Port = 12082
    public_url: str | None = None
    """Base URL nodes use to reach the control plane; derived from host and port when unset."""


class GatewaySettings(ListenSettings, kw_only=True, forbid_unknown_fields=True):
    port: Port = 12080


class WorkerApiSettings(ListenSettings, kw_only=True, forbid_unknown_fields=True):
    port: Port = 12090


class WorkerApiTrust(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How the orchestrator verifies nodes' HTTPS Worker APIs: the system trust store by default."""

    ca_file: Path | None = None
    pinned_sha256: str | None = None
    """SHA-256 of the Worker API certificate (DER); every node must then present that certificate."""

    def __post_init__(self) -> None:
        try:
            if self.pinned_sha256 is not None:
                self.pinned_sha256 = normalize_pin(self.pinned_sha256)
        except TlsError as exc:
            raise ValueError(f"worker_api_trust.pinned_sha256: {exc}") from None
        try:
            if self.ca_file is not None:
                client_context(ca_file=self.ca_file)
        except TlsError as exc:
            raise ValueError(f"worker_api_trust.ca_file: {exc}") from None


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    data_dir: Path
    database_url: str | None = None
    """Without one, ``serve`` runs a private PostgreSQL inside ``data_dir``."""
    log_level: str = "info"
    node_config: Path | None = None
    gateway: GatewaySettings = msgspec.field(default_factory=GatewaySettings)
    control_plane: ControlPlaneSettings = msgspec.field(default_factory=ControlPlaneSettings)
    worker_api: WorkerApiSettings = msgspec.field(default_factory=WorkerApiSettings)
    identity: IdentitySettings = msgspec.field(default_factory=IdentitySettings)
    nodes: NodePolicySettings = msgspec.field(default_factory=NodePolicySettings)
    dispatch: DispatchSettings = msgspec.field(default_factory=DispatchSettings)
    chat: ChatSettings = msgspec.field(default_factory=ChatSettings)
    worker_api_trust: WorkerApiTrust = msgspec.field(default_factory=WorkerApiTrust)

    @property
    def control_plane_public_url(self) -> str:
        if self.control_plane.public_url:
            return self.control_plane.public_url.rstrip("/")
        host = self.control_plane.host
        if host in ("0.0.0.0", "::", ""):  # noqa: S104
            host = "127.0.0.1"
        return f"{self.control_plane.scheme}://{host}:{self.control_plane.port}"


SECRET_KEYS = frozenset({"jwt_secret", "node_registration_psk", "secret_key", "admin_password"})


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the setting and where it came from."""


def default_data_dir(env: Mapping[str, str]) -> Path:
    """``$XDG_DATA_HOME/cynode``; for root without XDG, the system-service location."""
    xdg = env.get("XDG_DATA_HOME")
    if xdg:
        return Path(xdg) / "cynode"
    if os.geteuid() == 0:
        return Path("/var/lib/cynode")
    return Path.home() / ".local" / "share" / "cynode"


def _setting_paths(struct_type: type[msgspec.Struct], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for field in msgspec.structs.fields(struct_type):
        nested = field.type if isinstance(field.type, type) else None
        if nested is not None and issubclass(nested, msgspec.Struct):
            paths.extend(_setting_paths(nested, (*prefix, field.name)))
        else:
            paths.append((*prefix, field.name))
    return paths


def env_name(path: tuple[str, ...]) -> str:
    return ENV_PREFIX + "_".join(path).upper()


def _assign(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for key in path[:-1]:
        node = tree.setdefault(key, {})
        if not isinstance(node, dict):
            raise SettingsError(f"setting {'.'.join(path[:-1])} must be a mapping")
        tree = node
    tree[path[-1]] = value


def read_yaml_mapping(path: Path, label: str, error: type[SettingsError] = SettingsError) -> dict[str, Any]:
    """The mapping a YAML file holds (empty for an empty file); ``label`` names the file in errors."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"cannot read {label} {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise error(f"{label} {path} is not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise error(f"{label} {path} must hold a mapping at the top level")
    return loaded


def _read_yaml(config_file: Path) -> dict[str, Any]:
    loaded = read_yaml_mapping(config_file, "config file")
    leaked = SECRET_KEYS.intersection(loaded) | ({"secrets"} & loaded.keys())
    if leaked:
        raise SettingsError(
            f"config file {config_file} holds secret {', '.join(sorted(leaked))}: "
            "secrets come from the environment or files (e.g. CYNODE_JWT_SECRET_FILE), never from YAML"
        )
    return loaded


def load_settings(
    *,
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Merge the sources; ``overrides`` are dotted setting names from command-line flags."""
    env = os.environ if env is None else env
    tree: dict[str, Any] = _read_yaml(config_file) if config_file else {}
    sources: dict[str, str] = {}
    for path in _setting_paths(Settings):
        name = env_name(path)
        if name in env:
            _assign(tree, path, env[name])
            sources[".".join(path)] = f"env {name}"
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _assign(tree, tuple(dotted.split(".")), value)
            sources[dotted] = "command line"
    tree.setdefault("data_dir", str(default_data_dir(env)))
    try:
        return msgspec.convert(tree, Settings, strict=False, dec_hook=decode_path)
    except msgspec.ValidationError as exc:
        raise SettingsError(_explain(exc, sources, config_file)) from exc


def decode_path(type_: type, value: Any) -> Any:
    """msgspec ``dec_hook`` turning strings into ``Path`` for settings structs that hold paths."""
    if type_ is Path and isinstance(value, str):
        return Path(value)
    # msgspec turns a TypeError into a validation error that names the setting.
    raise TypeError(f"expected a path string, got {type(value).__name__}")


def _explain(exc: msgspec.ValidationError, sources: Mapping[str, str], config_file: Path | None) -> str:
    message = str(exc)
    setting = ""
    if " - at `$." in message:
        message, _, location = message.rpartition(" - at `$.")
        setting = location.rstrip("`")
    elif "Object contains unknown field" in message:
        return f"unknown setting: {message.removeprefix('Object contains unknown field ')}"
    source = sources.get(setting) or (f"config file {config_file}" if config_file else "default")
    return f"invalid setting {setting or '<root>'} ({source}): {message}"
