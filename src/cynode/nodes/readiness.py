"""Whether the orchestrator has an inference path, in the words ``/readyz`` answers with.

Ready means (orchestrator.md section 5): the Project Manager model can run somewhere that actually
serves prompt tasks. Today that is only a dispatchable node reporting inference running (its own
backend or an existing service) whose report lists the selected PM model. External provider keys
can be stored (``cynode credentials``) but nothing calls external providers yet, so they never make
the system ready: a "ready" answer that leaves prompt tasks queued forever would be a lie. With keys
and no local path the reason says so; ``execution_mode=force_external`` is never ready.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from cynode.context import OrchestratorContext
from cynode.nodes import repository
from cynode.nodes.dispatchable import DispatchableNode, dispatchable_nodes
from cynode.nodes.project_manager import (
    PINNED_MODEL_KEY,
    InvalidProjectManagerSetting,
    ProjectManagerPolicy,
    candidate_models,
    choose_pm_node,
)

NO_INFERENCE_PATH = (
    "no inference path available (no dispatchable node reports inference running; "
    "register and configure a worker node with inference)"
)
EXTERNAL_KEYS_UNUSED = (
    "no inference path available (external provider keys are configured, but CyNode does not call external "
    "providers yet; register and configure a worker node with inference)"
)
NO_EXTERNAL_PATH = (
    "no inference path available (PM model execution_mode is force_external, but CyNode does not call external "
    f"providers yet; set system setting {repository.PM_SETTING_PREFIX}selection.execution_mode to auto or force_local)"
)
NO_PINNED_MODEL = (
    "PM model selection mode is fixed_model but no model is pinned (set CYNODE_NODES_PROJECT_MANAGER_MODEL "
    f"or system setting {repository.PM_SETTING_PREFIX}{PINNED_MODEL_KEY})"
)
DATABASE_UNREACHABLE = "readiness check failed (database unreachable)"

_DATABASE_TIMEOUT_SECONDS = 3


def inference_readiness(
    nodes: Sequence[DispatchableNode], external_configured: bool, policy: ProjectManagerPolicy
) -> str | None:
    """None when the PM model has a path, else the reason an operator can act on.

    ``external_configured`` only shapes the reason: external keys are no inference path (yet).
    """
    if policy.execution_mode == "force_external":
        return NO_EXTERNAL_PATH
    candidates = [node for node in nodes if node.inference_running]
    if not candidates:
        return EXTERNAL_KEYS_UNUSED if external_configured else NO_INFERENCE_PATH
    node = choose_pm_node(candidates, policy.prefer_orchestrator_host)
    models = candidate_models(policy, node.capability)
    if any(model in node.available_models for model in models):
        return None
    if not models:
        return NO_PINNED_MODEL
    return (
        f"PM model {models[0]} not yet available on node {node.node_slug} "
        "(waiting for its inference backend to load it)"
    )


async def inference_path_problem(ctx: OrchestratorContext) -> str | None:
    """The reason ``/readyz`` of the control plane and gateway answers 503 with, or None when ready."""
    try:
        async with ctx.pool.connection(timeout=_DATABASE_TIMEOUT_SECONDS) as conn:
            nodes = await dispatchable_nodes(conn, ctx.secret_box, ctx.settings.nodes.heartbeat_grace_seconds)
            external = await repository.external_provider_configured(conn)
            settings = await repository.project_manager_settings(conn)
    except (psycopg.Error, TimeoutError):
        return DATABASE_UNREACHABLE
    try:
        policy = ProjectManagerPolicy.from_settings(settings, ctx.settings.nodes.project_manager_model)
    except InvalidProjectManagerSetting as exc:
        return str(exc)
    return inference_readiness(nodes, external, policy)
