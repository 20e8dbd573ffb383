"""Whether the orchestrator has an inference path, in the words ``/readyz`` answers with.

Ready means (orchestrator.md section 5): the Project Manager model can run somewhere. Locally, that
is a dispatchable node reporting inference running (its own backend or an existing service) whose
report lists the selected PM model; externally, an active provider key. Which one is tried follows
the ``agents.project_manager.model.selection.execution_mode`` system setting.
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
    "register and configure a worker node or configure external provider keys)"
)
NO_EXTERNAL_PATH = (
    "no inference path available (PM model execution_mode is force_external but no external provider key is configured)"
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
    """None when the PM model has a path, else the reason an operator can act on."""
    external_allowed = external_configured and policy.execution_mode != "force_local"
    if policy.execution_mode == "force_external":
        return None if external_configured else NO_EXTERNAL_PATH
    candidates = [node for node in nodes if node.inference_running]
    if not candidates:
        return None if external_allowed else NO_INFERENCE_PATH
    node = choose_pm_node(candidates, policy.prefer_orchestrator_host)
    models = candidate_models(policy, node.capability)
    if any(model in node.available_models for model in models) or external_allowed:
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
