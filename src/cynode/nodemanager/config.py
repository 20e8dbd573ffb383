"""The node's startup configuration (upstream ``node.yaml``), resolved before anything starts."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass

from cynode.sandbox import SandboxSettings
from cynode.settings import Settings


@dataclass(frozen=True)
class NodeConfig:
    slug: str
    sandbox: SandboxSettings
    worker_api_host: str
    worker_api_port: int
    worker_api_max_request_bytes: int | None


def load_node_config(settings: Settings, env: Mapping[str, str]) -> NodeConfig:
    state_dir = settings.data_dir / "node"
    return NodeConfig(
        slug=socket.gethostname(),
        sandbox=SandboxSettings(mount_root=state_dir / "sandbox_mounts"),
        worker_api_host=settings.worker_api.host,
        worker_api_port=settings.worker_api.port,
        worker_api_max_request_bytes=settings.worker_api.max_request_bytes,
    )
