"""Control-plane payloads between node managers and the orchestrator.

Covers registration (`{psk, capability}`), the capability report, the bootstrap payload returned
on registration, the node configuration payload, its acknowledgement, and heartbeats. Optional
booleans are `bool | None` so "not reported" stays distinct from `false`; optional lists default to
empty except where an empty list means something different from an absent one.
"""

from typing import Annotated, Any, ClassVar, Literal

import msgspec

from cynode.contracts.codec import Timestamp, VersionedPayload

__all__ = [
    "AgentProxyEndpoints",
    "BootstrapEndpoints",
    "BootstrapOrchestrator",
    "ComputeInfo",
    "ConfigAckError",
    "ConfigAckStatus",
    "ConfigEndpoints",
    "ConfigOrchestrator",
    "ConfigVersion",
    "ContainerRuntimeInfo",
    "GpuDevice",
    "GpuInfo",
    "InferenceBackend",
    "InferenceInfo",
    "InferenceMode",
    "InferenceVariant",
    "ManagedServiceState",
    "ManagedServiceStatus",
    "ManagedServicesConfig",
    "ManagedServicesStatus",
    "ManagedServicesSupport",
    "ModelCache",
    "ModelCachePullCredential",
    "NetworkInfo",
    "NodeAuth",
    "NodeBootstrapPayload",
    "NodeCapabilityReport",
    "NodeConfigAck",
    "NodeConfigurationPayload",
    "NodeConstraints",
    "NodeHeartbeat",
    "NodeIdentity",
    "NodePolicy",
    "NodeRegistrationRequest",
    "PlatformInfo",
    "ProxyBinding",
    "PullCredentials",
    "RegistryPullCredential",
    "SandboxPolicy",
    "SandboxRegistry",
    "SandboxSupport",
    "TlsInfo",
    "TrustMaterial",
    "UpdatePolicy",
    "WorkerApiConfig",
    "WorkerApiEndpoint",
]

# A ULID in canonical upper-case Crockford Base32: nodes order configs by comparing these strings,
# which only works when every producer uses the same alphabet and case. `\Z`, not `$`, because `$`
# also matches before a trailing newline.
ConfigVersion = Annotated[str, msgspec.Meta(pattern=r"^[0-9A-HJKMNP-TV-Z]{26}\Z")]

InferenceMode = Literal["allow", "disabled", "require"]
InferenceVariant = Literal["cpu", "cuda", "rocm"]
ManagedServiceState = Literal["stopped", "starting", "ready", "unhealthy", "error"]
ProxyBinding = Literal["per_service_loopback_listener", "per_service_uds", "other"]
ConfigAckStatus = Literal["applied", "failed"]


# --- Capability report (node_capability_report_v1) ---


class NodeIdentity(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Who the node is: its slug (the node startup YAML `node.id`), display name and labels."""

    node_slug: str
    name: str | None = None
    labels: list[str] = []


class PlatformInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Operating system and CPU architecture of the node host."""

    os: str
    arch: str
    distro: str | None = None
    kernel_version: str | None = None


class ContainerRuntimeInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The container runtime sandboxes run on (podman or docker) and its rootless support."""

    runtime: str
    version: str | None = None
    rootless_supported: bool | None = None
    rootless_enabled: bool | None = None


class ComputeInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """CPU, memory and disk of the node; totals and currently available amounts are separate fields."""

    cpu_cores: int
    ram_mb: int
    cpu_model: str | None = None
    cpu_count: int | None = None
    cpu_clock_base_mhz: float | None = None
    cpu_clock_boost_mhz: float | None = None
    ram_available_mb: int | None = None
    storage_free_mb: int | None = None


class GpuDevice(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One GPU; `features` keys such as `cuda_capability` or `rocm_version` select the inference variant."""

    vendor: str | None = None
    model: str | None = None
    device_id: str | None = None
    vram_mb: int | None = None
    available_vram_mb: int | None = None
    features: dict[str, str] = {}


class GpuInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """GPU presence, devices and VRAM totals across all devices."""

    present: bool
    devices: list[GpuDevice] = []
    total_vram_mb: int | None = None
    total_available_vram_mb: int | None = None


class SandboxSupport(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Whether the node runs sandbox jobs, with which isolation features, and how many at once."""

    supported: bool
    features: list[str] = []
    max_concurrency: int | None = None


class NetworkInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Network facts the node observed about itself."""

    orchestrator_reachable: bool | None = None
    outbound_policy: str | None = None


class InferenceInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Local inference facts plus the operator's `mode` override; input to the inference_backend decision."""

    supported: bool | None = None
    mode: InferenceMode | None = None
    existing_service: bool | None = None
    running: bool | None = None
    available_models: list[str] = []


class WorkerApiEndpoint(msgspec.Struct, kw_only=True):
    """Where the orchestrator reaches this node's Worker API (scheme, host and port)."""

    base_url: str


class ManagedServicesSupport(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Whether the node can run orchestrator-directed long-lived service containers."""

    supported: bool | None = None
    features: list[str] = []


class AgentProxyEndpoints(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Identity-bound proxy URLs a managed agent uses to call the orchestrator through the worker."""

    mcp_gateway_proxy_url: str | None = None
    ready_callback_proxy_url: str | None = None
    binding: ProxyBinding | None = None


class ManagedServiceStatus(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Observed state of one managed service container."""

    service_id: str
    service_type: str
    state: ManagedServiceState
    endpoints: list[str] = []
    agent_to_orchestrator_proxy: AgentProxyEndpoints | None = None
    ready_at: Timestamp | None = None
    image: str | None = None
    container_id: str | None = None
    restart_count: int | None = None
    observed_generation: str | None = None
    last_error: str | None = None


class ManagedServicesStatus(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Managed service states, sent in capability reports and config acks."""

    services: list[ManagedServiceStatus] = []


class TlsInfo(msgspec.Struct, kw_only=True, omit_defaults=True):
    """TLS trust state, and the Worker API's self-signed certificate when it serves HTTPS."""

    trust_material_status: str | None = None
    worker_api_server_cert_pem: str | None = None


class NodeCapabilityReport(VersionedPayload, kw_only=True, omit_defaults=True):
    """node_capability_report_v1: what a node is and can do, sent at registration and on change."""

    payload_kind: ClassVar[str] = "node_capability_report"

    reported_at: Timestamp
    node: NodeIdentity
    platform: PlatformInfo
    compute: ComputeInfo
    container_runtime: ContainerRuntimeInfo | None = None
    gpu: GpuInfo | None = None
    sandbox: SandboxSupport | None = None
    network: NetworkInfo | None = None
    inference: InferenceInfo | None = None
    worker_api: WorkerApiEndpoint | None = None
    managed_services: ManagedServicesSupport | None = None
    managed_services_status: ManagedServicesStatus | None = None
    tls: TlsInfo | None = None


class NodeRegistrationRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Body of POST /v1/nodes/register: the registration pre-shared key and a capability report.

    ``node_secret`` proves the node is the one that first registered the slug (it was issued in
    that registration's ``auth.node_secret``); a known slug without it is refused.
    """

    psk: str
    capability: NodeCapabilityReport
    node_secret: str | None = None


class NodeHeartbeat(VersionedPayload, kw_only=True):
    """Liveness ping from a node manager; keeps the node dispatchable within the grace period."""

    payload_kind: ClassVar[str] = "node_heartbeat"

    node_slug: str
    sent_at: Timestamp


# --- Bootstrap (node_bootstrap_payload_v1) ---


class BootstrapEndpoints(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Absolute URLs the node uses after registration instead of composing its own."""

    worker_registration_url: str
    node_config_url: str
    node_report_url: str
    node_heartbeat_url: str | None = None
    """CyNode extension: where the node sends its light liveness beats between reports."""


class BootstrapOrchestrator(msgspec.Struct, kw_only=True):
    """Orchestrator base URL and the node-facing endpoints."""

    base_url: str
    endpoints: BootstrapEndpoints


class NodeAuth(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The node JWT for control-plane calls and when it stops being accepted.

    ``node_secret`` is present only when this registration issued one (the slug's first): the node
    keeps it and presents it whenever it registers again.
    """

    node_jwt: str
    expires_at: Timestamp
    node_secret: str | None = None


class TrustMaterial(msgspec.Struct, kw_only=True, omit_defaults=True):
    """How the node should trust the orchestrator's TLS endpoint."""

    ca_bundle_pem: str | None = None
    pinned_spki_sha256: str | None = None


class RegistryPullCredential(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Short-lived credentials for one sandbox image registry."""

    registry_url: str
    username: str | None = None
    password: str | None = None
    token: str | None = None
    expires_at: Timestamp | None = None


class ModelCachePullCredential(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Short-lived credentials for the model cache."""

    cache_url: str
    token: str | None = None
    expires_at: Timestamp | None = None


class PullCredentials(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Pull credentials handed out at registration; registries are in rank order."""

    sandbox_registries: list[RegistryPullCredential] = []
    model_cache: ModelCachePullCredential | None = None


class NodeBootstrapPayload(VersionedPayload, kw_only=True, omit_defaults=True):
    """node_bootstrap_payload_v1: the registration response with the node JWT and endpoint URLs."""

    payload_kind: ClassVar[str] = "node_bootstrap_payload"

    issued_at: Timestamp
    orchestrator: BootstrapOrchestrator
    auth: NodeAuth
    trust: TrustMaterial | None = None
    initial_config_version: ConfigVersion | None = None
    pull_credentials: PullCredentials | None = None
    heartbeat_interval_seconds: Annotated[float, msgspec.Meta(gt=0)] | None = None
    """CyNode extension: how often the node should beat so the orchestrator's grace period never lapses."""


# --- Configuration (node_configuration_payload_v1) ---


class ConfigEndpoints(msgspec.Struct, kw_only=True):
    """URLs the orchestrator dispatches to and receives reports on for this node."""

    worker_api_target_url: str
    node_report_url: str


class ConfigOrchestrator(msgspec.Struct, kw_only=True):
    """Orchestrator base URL and the endpoints relevant to applying this config."""

    base_url: str
    endpoints: ConfigEndpoints


class SandboxRegistry(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One registry for sandbox image pulls; the list order is the pull order."""

    registry_url: str
    pull_token: str | None = None
    pull_token_expires_at: Timestamp | None = None


class ModelCache(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Where the node fetches models from, with an optional short-lived token."""

    cache_url: str
    pull_token: str | None = None
    pull_token_expires_at: Timestamp | None = None


class SandboxPolicy(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Orchestrator-side sandbox policy; the node's own YAML may only make it stricter."""

    # None means "no orchestrator allowlist", while an empty list allows nothing.
    allowed_images: list[str] | None = None
    default_network_policy: str | None = None
    allowed_egress_domains: list[str] | None = None
    allow_privileged: bool | None = None
    allow_host_network: bool | None = None


class UpdatePolicy(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Whether and how often the node may pick up config changes after startup."""

    enable_dynamic_config: bool | None = None
    poll_interval_seconds: int | None = None
    allow_service_restart: bool | None = None


class NodePolicy(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Policy overrides delivered with the config."""

    sandbox: SandboxPolicy | None = None
    updates: UpdatePolicy | None = None


class WorkerApiConfig(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The bearer token the orchestrator presents to this node's Worker API; a secret kept from sandboxes."""

    orchestrator_bearer_token: str | None = None
    orchestrator_bearer_token_expires_at: Timestamp | None = None


class InferenceBackend(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Instruction to start the node-local inference container; absent or not enabled means start none."""

    enabled: bool | None = None
    image: str | None = None
    variant: InferenceVariant | None = None
    port: int | None = None
    env: dict[str, str] = {}
    selected_model: str | None = None


class ManagedServicesConfig(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Desired managed services; entries stay untyped because their schema belongs to a later phase."""

    services: list[dict[str, Any]] = []


class NodeConstraints(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Limits the node must apply on top of its own: request body size and job timeout."""

    max_request_bytes: int | None = None
    max_job_timeout_seconds: int | None = None


class NodeConfigurationPayload(VersionedPayload, kw_only=True, omit_defaults=True):
    """node_configuration_payload_v1: everything a node needs to start serving jobs."""

    payload_kind: ClassVar[str] = "node_configuration_payload"

    config_version: ConfigVersion
    issued_at: Timestamp
    node_slug: str
    orchestrator: ConfigOrchestrator
    sandbox_registries: list[SandboxRegistry] = []
    require_digest_pinning: bool | None = None
    model_cache: ModelCache | None = None
    policy: NodePolicy | None = None
    worker_api: WorkerApiConfig | None = None
    inference_backend: InferenceBackend | None = None
    managed_services: ManagedServicesConfig | None = None
    constraints: NodeConstraints | None = None
    notes: str | None = None


# --- Config acknowledgement (node_config_ack_v1) ---


class ConfigAckError(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Why applying a config failed."""

    type: str
    message: str
    details: dict[str, Any] | None = None


class NodeConfigAck(VersionedPayload, kw_only=True, omit_defaults=True):
    """node_config_ack_v1: the node's report that it applied (or failed to apply) a config version."""

    payload_kind: ClassVar[str] = "node_config_ack"

    node_slug: str
    config_version: ConfigVersion
    ack_at: Timestamp
    status: ConfigAckStatus
    error: ConfigAckError | None = None
    effective_config_hash: str | None = None
    managed_services_status: ManagedServicesStatus | None = None
