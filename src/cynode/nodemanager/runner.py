"""The node manager's long-running loop (node role)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from cynode.context import OrchestratorContext
from cynode.nodemanager.config import NodeConfig
from cynode.settings import Settings
from cynode.worker.service import WorkerService


async def run_node_manager(
    settings: Settings,
    node: NodeConfig,
    worker: WorkerService,
    env: Mapping[str, str],
    worker_api_url: str,
    local_control_plane: OrchestratorContext | None,
) -> None:
    """Register, apply config and stay in touch until cancelled; raising means the node must stop.

    ``worker_api_url`` is where this process's Worker API actually listens (after binding);
    ``local_control_plane`` is set when the orchestrator role runs in this process.
    """
    await asyncio.Event().wait()
