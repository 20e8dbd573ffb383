"""Admin API payloads on the user gateway: user lists, nodes, system settings, provider credentials, status."""

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import msgspec

from cynode.contracts.identity import UserResponse

__all__ = [
    "AddCredentialRequest",
    "AdminStateChange",
    "CredentialListResponse",
    "CredentialResponse",
    "NodeAdminState",
    "NodeCapabilitySummary",
    "NodeListResponse",
    "NodeResponse",
    "RotateCredentialRequest",
    "SetSettingRequest",
    "SettingListResponse",
    "SettingResponse",
    "SystemStatusResponse",
    "UserListResponse",
]

NodeAdminState = Literal["enabled", "draining", "disabled"]


class UserListResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """GET /v1/users: one page of users by handle; ``next_cursor`` is absent on the last page."""

    users: list[UserResponse]
    next_cursor: str | None = None


class NodeCapabilitySummary(msgspec.Struct, kw_only=True, omit_defaults=True):
    """What the node last reported, in the few numbers an operator looks at first."""

    cpu_cores: int
    ram_mb: int
    gpu_count: int = 0
    vram_mb: int = 0
    sandbox_max_concurrency: int = 0
    inference_running: bool = False
    models: list[str] = msgspec.field(default_factory=list)


class NodeResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """A node as the admin API shows it; the Worker API bearer token is never part of it."""

    node_id: UUID
    node_slug: str
    status: str
    """Registration status (``registered``, ``active``, ...), maintained by the control plane."""
    admin_state: NodeAdminState
    enabled: bool
    dispatchable: bool
    """Whether the dispatcher would hand this node a new job now."""
    running_jobs: int
    worker_api_url: str | None = None
    last_heartbeat: datetime | None = None
    config_version: str | None = None
    config_ack_status: str | None = None
    config_ack_version: str | None = None
    config_ack_error: str | None = None
    capability: NodeCapabilitySummary | None = None


class NodeListResponse(msgspec.Struct, kw_only=True):
    nodes: list[NodeResponse]


class AdminStateChange(msgspec.Struct, kw_only=True):
    """Answer of POST /v1/nodes/{node}/enable|disable|drain."""

    node: NodeResponse
    changed: bool
    """False when the node already was in the requested state (nothing was written or audited)."""


class SettingResponse(msgspec.Struct, kw_only=True):
    """One system setting; ``value`` is None (and ``is_set`` false) while the default applies."""

    key: str
    value_type: str
    value: Any = None
    is_set: bool = False
    default: Any = None
    allowed: list[str] | None = None
    description: str = ""
    version: int = 0
    updated_at: datetime | None = None
    updated_by: str | None = None


class SettingListResponse(msgspec.Struct, kw_only=True):
    settings: list[SettingResponse]


class SetSettingRequest(msgspec.Struct, kw_only=True):
    """Body of PUT /v1/settings/{key}; ``null`` removes the setting so its default applies."""

    value: Any


class CredentialResponse(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An external provider credential without its secret (which is only ever written, never read back)."""

    credential_id: UUID
    provider: str
    name: str
    credential_type: str
    active: bool
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    updated_by: str | None = None


class CredentialListResponse(msgspec.Struct, kw_only=True):
    credentials: list[CredentialResponse]


class AddCredentialRequest(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Body of POST /v1/credentials."""

    provider: str
    name: str
    secret: str
    credential_type: str = "api_key"
    expires_at: datetime | None = None


class RotateCredentialRequest(msgspec.Struct, kw_only=True):
    """Body of POST /v1/credentials/{id}/rotate: the replacement secret."""

    secret: str


class SystemStatusResponse(msgspec.Struct, kw_only=True):
    """GET /v1/status: what an operator checks first."""

    ready: bool
    readiness: str
    """``ready`` or the reason the gateway's ``/readyz`` gives."""
    queued_jobs: int
    running_jobs: int
    nodes: list[NodeResponse]
