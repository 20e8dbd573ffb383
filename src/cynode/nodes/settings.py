"""Settings of the node control plane (the ``nodes:`` section; env ``CYNODE_NODES_*``).

Everything here is orchestrator-side policy delivered to nodes in their configuration payload, or
governs how the control plane treats nodes (token lifetime, heartbeat grace). Changing a value that
ends up in a node's configuration gives that node a new ``config_version`` on its next fetch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import msgspec

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
InferenceVariant = Literal["cpu", "cuda", "rocm"]
NetworkPolicy = Literal["none", "restricted"]

DEFAULT_MAX_JOB_TIMEOUT_SECONDS = 10800
DEFAULT_MAX_REQUEST_BYTES = 10 * 1024 * 1024


class SandboxPolicySettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``policy.sandbox`` of every node's configuration; a node's own YAML may only be stricter."""

    allowed_images: list[str] | None = None
    """Images sandboxes may run; unset means no orchestrator allowlist (the node's own applies)."""
    default_network_policy: NetworkPolicy = "none"
    allow_privileged: bool = False
    allow_host_network: bool = False
    registries: list[str] = []
    """Registry URLs nodes pull missing sandbox images from, in rank order (``http://`` skips TLS)."""
    require_digest_pinning: bool = False
    """Nodes then run only images referenced by ``@sha256:`` digest."""
    registry_token_files: dict[str, Path] = {}
    """Pull token per registry URL, each read from its file when a node's config is built (so a
    rotated token reaches nodes as a new config version); tokens never go in settings files."""

    def __post_init__(self) -> None:
        for url, path in self.registry_token_files.items():
            if url not in self.registries:
                raise ValueError(f"registry_token_files names {url}, which is not in registries")
            if not path.is_file():
                raise ValueError(f"registry_token_files: the token file for {url} ({path}) is not a readable file")

    def registry_tokens(self) -> dict[str, str]:
        return {url: path.read_text(encoding="utf-8").strip() for url, path in self.registry_token_files.items()}


class NodePolicySettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    node_jwt_ttl_seconds: PositiveInt = 24 * 3600
    heartbeat_grace_seconds: PositiveInt = 90
    """A node not heard from (report, heartbeat, config call) for this long is not dispatchable."""
    registrations_per_minute_per_source: PositiveInt = 30
    """Registration requests accepted per client source (IPv4 address, IPv6 /64) and minute."""
    worker_api_target_url: str | None = None
    """Operator override of every node's dispatch URL."""

    local_inference: bool = True
    """Mandatory policy: False tells every node not to start a node-local inference backend."""
    local_inference_disabled_nodes: list[str] = []
    """Node slugs that must not start a node-local inference backend (mandatory policy)."""
    local_inference_disabled_labels: list[str] = []
    """Node labels whose nodes must not start a node-local inference backend (mandatory policy)."""
    inference_variants: frozenset[InferenceVariant] = frozenset({"rocm", "cuda", "cpu"})
    """Variants the orchestrator may choose (optional policy: a node in ``require`` mode ignores it)."""
    inference_image_cpu: str | None = "docker.io/ollama/ollama"
    inference_image_cuda: str | None = "docker.io/ollama/ollama"
    inference_image_rocm: str | None = "docker.io/ollama/ollama:rocm"
    inference_port: Port = 11434
    project_manager_model: str | None = None
    """Pinned Project Manager model; wins over the ``agents.project_manager.model.*`` system settings."""

    max_job_timeout_seconds: PositiveInt | None = DEFAULT_MAX_JOB_TIMEOUT_SECONDS
    max_request_bytes: PositiveInt | None = DEFAULT_MAX_REQUEST_BYTES
    sandbox: SandboxPolicySettings = msgspec.field(default_factory=SandboxPolicySettings)
