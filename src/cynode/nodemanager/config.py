"""The node's startup configuration (upstream ``node.yaml``), resolved before anything starts.

Owns the YAML schema (upstream key names), where the file is found (``--node-config``, else
``/etc/cynode/node.yaml`` when it exists, else built-in defaults for the all-in-one laptop case),
the errors a bad file produces (naming the key), and where the registration PSK comes from. The
PSK itself is read only when the node registers, because whether the orchestrator runs in this
process (and so may share a generated PSK) is known only then.

Every key is honoured or refused at start-up, never ignored: an operator who writes
``sandbox.security.allow_privileged: true`` or ``sandbox.rootless: true`` must not believe a
policy is in force that this node does not apply. Upstream keys whose value matches what the node
does are accepted; other values stop start-up with a message naming the key and what is
supported; keys outside the schema are typos and refused the same way.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, TypeVar
from urllib.parse import urlsplit

import msgspec

from cynode.inference.settings import InferenceSettings
from cynode.sandbox import SandboxSettings
from cynode.secrets import persistent_secret, read_secret
from cynode.settings import ENV_PREFIX, Settings, SettingsError, decode_path, read_yaml_mapping
from cynode.tls import TlsError, client_context, normalize_pin

T = TypeVar("T")

DEFAULT_NODE_CONFIG = Path("/etc/cynode/node.yaml")
PSK_SECRET = "node_registration_psk"  # noqa: S105 (the secret's name)
PSK_VARIABLE = ENV_PREFIX + PSK_SECRET.upper()
MOUNT_ROOT_VARIABLE = ENV_PREFIX + "SANDBOX_MOUNT_ROOT"
# Keys that would put the PSK itself into the file.
_SECRET_KEYS = frozenset({"psk", "registration_psk", "node_registration_psk"})

Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
PositiveSeconds = Annotated[float, msgspec.Meta(gt=0)]


class NodeConfigError(SettingsError):
    """The node startup YAML (or the PSK it points to) is unusable; the message names the key."""


# --- The YAML schema -------------------------------------------------------------------------


class TlsSection(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    ca_bundle_path: Path | None = None
    """CA bundle that verifies the orchestrator's HTTPS certificate."""
    pinned_sha256: str | None = None


class TimeoutsSection(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    connect_seconds: PositiveSeconds = 10.0
    request_seconds: PositiveSeconds = 30.0


class OrchestratorSection(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    url: str | None = None
    registration_psk_env: str | None = None
    registration_psk_file: Path | None = None
    tls: TlsSection = TlsSection()
    timeouts: TimeoutsSection = TimeoutsSection()


class NodeSection(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    id: str
    name: str | None = None
    labels: tuple[str, ...] = ()
    metadata: dict[str, Any] = {}


class WorkerApiSection(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    listen_host: str | None = None
    listen_port: Port | None = None
    public_base_url: str | None = None
    max_request_bytes: PositiveInt | None = None


class StorageSection(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    state_dir: Path | None = None
    cache_dir: Path | None = None
    """Refused when set: images live in podman's own storage, nothing else is cached."""
    artifacts_dir: Path | None = None
    """Refused when set: job output travels in the job result; nothing is staged on the node."""


class LoggingSection(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    level: str | None = None
    format: str | None = None
    file_path: Path | None = None


class UpdatesSection(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    enable_dynamic_config: bool = False
    poll_interval_seconds: PositiveSeconds | None = None
    allow_service_restart: bool = False


class SecuritySection(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    allow_privileged: bool = False
    allow_host_network: bool = False
    allow_device_mounts: bool = False


class MountsSection(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    allowed_host_paths: tuple[str, ...] = ()
    read_only_by_default: bool = True


class SandboxPolicySection(msgspec.Struct, kw_only=True, frozen=True):
    """The upstream ``sandbox`` keys the node answers for itself; the rest go to ``SandboxSettings``."""

    runtime: str = "podman"
    rootless: bool | None = None
    security: SecuritySection = SecuritySection()
    mounts: MountsSection = MountsSection()
    allowed_egress_domains: tuple[str, ...] = ()


_SANDBOX_POLICY_KEYS = frozenset(field.name for field in msgspec.structs.fields(SandboxPolicySection))
_LOG_LEVEL_ALIASES = {"warn": "warning"}


class NodeYaml(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    version: Literal[1]
    orchestrator: OrchestratorSection = OrchestratorSection()
    node: NodeSection | None = None
    worker_api: WorkerApiSection = WorkerApiSection()
    sandbox: dict[str, Any] = {}
    """Decoded into ``SandboxSettings`` once the state dir (the mount root's default parent) is known."""
    inference: dict[str, Any] = {}
    """Decoded into ``InferenceSettings`` after ``allow_gpu``, which the node applies itself, is taken out."""
    storage: StorageSection = StorageSection()
    logging: LoggingSection = LoggingSection()
    updates: UpdatesSection = UpdatesSection()


# --- What the node runs with -----------------------------------------------------------------


@dataclass(frozen=True)
class PskSource:
    """Where the registration PSK is read from; describes itself without ever holding the value."""

    env_variable: str | None = None
    file: Path | None = None

    def describe(self) -> str:
        if self.file is not None:
            return f"orchestrator.registration_psk_file {self.file}"
        if self.env_variable is not None:
            return f"environment variable {self.env_variable} (orchestrator.registration_psk_env)"
        return f"{PSK_VARIABLE} (or {PSK_VARIABLE}_FILE)"

    def read(self, env: Mapping[str, str], data_dir: Path, *, co_located: bool) -> str:
        """The PSK; a co-located orchestrator's generated one when nothing is configured."""
        if self.file is not None:
            try:
                value = self.file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise NodeConfigError(f"cannot read {self.describe()}: {exc.strerror or exc}") from exc
        elif self.env_variable is not None:
            value = env.get(self.env_variable, "").strip()
        else:
            value = (read_secret(PSK_SECRET, env) or "").strip()
            if not value and co_located:
                # The control plane of this process makes the same call, so both sides agree.
                value = persistent_secret(PSK_SECRET, data_dir, env)
        if not value:
            raise NodeConfigError(f"no node registration PSK: {self.describe()} is unset or empty")
        return value


@dataclass(frozen=True)
class NodeConfig:
    slug: str
    sandbox: SandboxSettings
    worker_api_host: str
    worker_api_port: int
    worker_api_max_request_bytes: int | None
    orchestrator_url: str
    """Where to register when the orchestrator runs elsewhere; later calls use the bootstrap URLs."""
    psk_source: PskSource
    state_dir: Path
    """Node-local state: the applied config version, inference state."""
    name: str | None = None
    labels: tuple[str, ...] = ()
    worker_api_public_url: str | None = None
    """What the node advertises as ``worker_api.base_url``; unset, the bound Worker API URL."""
    inference: InferenceSettings = field(default_factory=InferenceSettings)
    connect_timeout_seconds: float = 10.0
    request_timeout_seconds: float = 30.0
    ca_bundle: Path | None = None
    pinned_sha256: str | None = None
    """Normalized pin of the control plane's certificate (``orchestrator.tls.pinned_sha256``)."""
    allow_gpu: bool = True
    """``inference.allow_gpu``; false reports no GPU, so the orchestrator never picks a GPU variant."""


def load_node_config(settings: Settings, env: Mapping[str, str]) -> NodeConfig:
    """The node config from ``settings.node_config``, else the default file, else defaults."""
    path = settings.node_config
    if path is None and DEFAULT_NODE_CONFIG.is_file():
        path = DEFAULT_NODE_CONFIG
    raw = _read_yaml(path) if path is not None else {"version": 1}
    source = str(path) if path is not None else "built-in defaults"
    document = _decode(raw, NodeYaml, source)
    return _resolve(document, settings, env, source)


def _read_yaml(path: Path) -> dict[str, Any]:
    loaded = read_yaml_mapping(path, "node config", NodeConfigError)
    orchestrator = loaded.get("orchestrator")
    leaked = _SECRET_KEYS.intersection(orchestrator) if isinstance(orchestrator, dict) else set()
    if leaked:
        key = sorted(leaked)[0]
        raise NodeConfigError(
            f"node config {path}: orchestrator.{key} would put the registration PSK in the file; secrets never go "
            "in YAML (use orchestrator.registration_psk_env or orchestrator.registration_psk_file)"
        )
    return loaded


def _decode(raw: Any, type_: type[T], source: str, prefix: str = "") -> T:
    try:
        return msgspec.convert(raw, type_, dec_hook=decode_path)
    except msgspec.ValidationError as exc:
        message, _, location = str(exc).partition(" - at `$")
        path = [part for part in (prefix.rstrip("."), location.rstrip("`").lstrip(".")) if part]
        for lead, reason in (
            ("Object contains unknown field ", "unknown key (not part of the node config schema)"),
            ("Object missing required field ", "required key is missing"),
        ):
            if message.startswith(lead):
                path.append(message.removeprefix(lead).strip("`"))
                message = reason
        _fail(source, ".".join(path) or "<root>", message)


def _fail(source: str, key: str, reason: str) -> NoReturn:
    raise NodeConfigError(f"node config {source}: invalid {key}: {reason}")


def _http_url(value: str, source: str, key: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        _fail(source, key, f"must be an absolute http(s) URL, got {value!r}")
    return value.strip().rstrip("/")


def _refuse_unknown_keys(raw: Mapping[str, Any], struct_type: type[msgspec.Struct], source: str, prefix: str) -> None:
    """``struct_type`` may let unknown keys pass (other loaders share it); the node YAML never does."""
    fields = {field.name: field.type for field in msgspec.structs.fields(struct_type)}
    for key, value in raw.items():
        if key not in fields:
            reason = _UNSUPPORTED_UPSTREAM_KEYS.get(prefix + key, "unknown key (not part of the node config schema)")
            _fail(source, prefix + key, reason)
        nested = fields[key]
        if isinstance(value, dict) and isinstance(nested, type) and issubclass(nested, msgspec.Struct):
            _refuse_unknown_keys(value, nested, source, f"{prefix}{key}.")


_UNSUPPORTED_UPSTREAM_KEYS = {
    "inference.max_concurrency": "not supported: the local backend serves requests as they come; remove the key",
}


def _unsupported_values(document: NodeYaml, policy: SandboxPolicySection, settings: Settings) -> list[tuple[str, str]]:
    """(key, reason) for every value this node cannot honour, in file order."""
    as_root = os.geteuid() == 0
    external_podman = "podman_socket" in document.sandbox
    security, logging, updates, storage = policy.security, document.logging, document.updates, document.storage
    level = _LOG_LEVEL_ALIASES.get((logging.level or "").lower(), (logging.level or "").lower())
    only_false = "only false is supported"
    checks = [
        ("node.metadata", bool(document.node and document.node.metadata),
         "not reported to the orchestrator by this node; remove the key"),
        ("sandbox.runtime", policy.runtime != "podman",
         f"this node runs sandboxes on podman only, got {policy.runtime!r}"),
        ("sandbox.rootless", policy.rootless is not None and external_podman,
         "cannot be checked against an external podman service (sandbox.podman_socket); remove one of the two"),
        ("sandbox.rootless", policy.rootless is True and as_root,
         "rootless sandboxes need the node to run as an unprivileged user; this node runs as root, so its podman is "
         "rootful (jobs still run as an unprivileged user inside); set it to false or run the node unprivileged"),
        ("sandbox.rootless", policy.rootless is False and not as_root,
         "rootful sandboxes need the node to run as root; set it to true or run the node as root"),
        ("sandbox.security.allow_privileged", security.allow_privileged,
         f"sandboxes never run privileged; {only_false}"),
        ("sandbox.security.allow_host_network", security.allow_host_network,
         f"sandboxes never share the host network; {only_false}"),
        ("sandbox.security.allow_device_mounts", security.allow_device_mounts,
         f"sandboxes never get host devices; {only_false}"),
        ("sandbox.mounts.allowed_host_paths", bool(policy.mounts.allowed_host_paths),
         "host paths are never mounted into sandboxes (only their own /workspace and /job); only [] is supported"),
        ("sandbox.allowed_egress_domains", bool(policy.allowed_egress_domains),
         "there is no egress proxy (network policies are none and restricted); only [] is supported"),
        ("storage.cache_dir", storage.cache_dir is not None,
         "not used: images live in podman's storage; remove the key"),
        ("storage.artifacts_dir", storage.artifacts_dir is not None,
         "not used: job output travels in the job result; remove the key"),
        ("logging.level", bool(level) and level != settings.log_level.lower(),
         f"this process logs at {settings.log_level!r}; set the level with --log-level or CYNODE_LOG_LEVEL"),
        ("logging.format", logging.format not in (None, "json"), "logs are JSON lines only; only json is supported"),
        ("logging.file_path", logging.file_path is not None,
         "logs go to stderr for the service manager to keep; remove the key"),
        ("updates.enable_dynamic_config", updates.enable_dynamic_config,
         f"the node applies its configuration at registration only; {only_false}"),
        ("updates.poll_interval_seconds", updates.poll_interval_seconds is not None,
         "the node does not poll for configuration; remove the key"),
        ("updates.allow_service_restart", updates.allow_service_restart, only_false),
    ]  # fmt: skip
    return [(key, reason) for key, refused, reason in checks if refused]


def _control_plane_trust(tls: TlsSection, url: str, source: str) -> tuple[Path | None, str | None]:
    """The CA file and normalized pin the node verifies the control plane with, both checked now."""
    if tls.ca_bundle_path is None and tls.pinned_sha256 is None:
        return None, None
    if not url.startswith("https://"):
        _fail(source, "orchestrator.tls", f"applies to an https:// orchestrator.url only, got {url!r}")
    pin = None
    if tls.pinned_sha256 is not None:
        try:
            pin = normalize_pin(tls.pinned_sha256)
        except TlsError as exc:
            _fail(source, "orchestrator.tls.pinned_sha256", str(exc))
    try:
        client_context(ca_file=tls.ca_bundle_path, pinned_sha256=pin)
    except TlsError as exc:
        _fail(source, "orchestrator.tls.ca_bundle_path", str(exc))
    return tls.ca_bundle_path, pin


def _resolve(document: NodeYaml, settings: Settings, env: Mapping[str, str], source: str) -> NodeConfig:
    orchestrator = document.orchestrator
    worker_api = document.worker_api
    state_dir = document.storage.state_dir or settings.data_dir / "node"
    sandbox_raw = dict(document.sandbox)
    policy_raw = {key: sandbox_raw.pop(key) for key in _SANDBOX_POLICY_KEYS & sandbox_raw.keys()}
    policy = _decode(policy_raw, SandboxPolicySection, source, "sandbox.")
    _refuse_unknown_keys(sandbox_raw, SandboxSettings, source, "sandbox.")
    sandbox_raw.setdefault("mount_root", str(state_dir / "sandbox_mounts"))
    if env.get(MOUNT_ROOT_VARIABLE):
        sandbox_raw["mount_root"] = env[MOUNT_ROOT_VARIABLE]
    inference_raw = dict(document.inference)
    allow_gpu = _decode(inference_raw.pop("allow_gpu", True), bool, source, "inference.allow_gpu")
    _refuse_unknown_keys(inference_raw, InferenceSettings, source, "inference.")
    refused = _unsupported_values(document, policy, settings)
    if refused:
        _fail(source, *refused[0])
    if orchestrator.registration_psk_env is not None and orchestrator.registration_psk_file is not None:
        _fail(source, "orchestrator.registration_psk_file", "give either registration_psk_env or _file, not both")
    node = document.node
    slug = node.id.strip() if node is not None else socket.gethostname()
    if not slug:
        _fail(source, "node.id", "must not be empty")
    public_url = worker_api.public_base_url
    orchestrator_url = _http_url(orchestrator.url or settings.control_plane_public_url, source, "orchestrator.url")
    ca_bundle, pin = _control_plane_trust(orchestrator.tls, orchestrator_url, source)
    return NodeConfig(
        slug=slug,
        name=node.name if node is not None else None,
        labels=node.labels if node is not None else (),
        sandbox=_decode(sandbox_raw, SandboxSettings, source, "sandbox."),
        inference=_decode(inference_raw, InferenceSettings, source, "inference."),
        worker_api_host=worker_api.listen_host or settings.worker_api.host,
        worker_api_port=settings.worker_api.port if worker_api.listen_port is None else worker_api.listen_port,
        worker_api_max_request_bytes=worker_api.max_request_bytes or settings.worker_api.max_request_bytes,
        worker_api_public_url=_http_url(public_url, source, "worker_api.public_base_url") if public_url else None,
        orchestrator_url=orchestrator_url,
        psk_source=PskSource(orchestrator.registration_psk_env, orchestrator.registration_psk_file),
        state_dir=state_dir,
        connect_timeout_seconds=orchestrator.timeouts.connect_seconds,
        request_timeout_seconds=orchestrator.timeouts.request_seconds,
        ca_bundle=ca_bundle,
        pinned_sha256=pin,
        allow_gpu=allow_gpu,
    )
