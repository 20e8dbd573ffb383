"""The dispatcher's long-running loop (orchestrator role)."""

from __future__ import annotations

import asyncio

from cynode.context import LocalWorker, OrchestratorContext


async def run_dispatcher(ctx: OrchestratorContext, local_worker: LocalWorker | None) -> None:
    """Dispatch until cancelled; ``local_worker`` is this process's own node, reached in-process."""
    await asyncio.Event().wait()
