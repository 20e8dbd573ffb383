"""The node manager driven directly (HTTP transport) and its capability detection."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from cynode.contracts.nodes import InferenceInfo
from cynode.inference.node import NodeInference
from cynode.inference.settings import InferenceSettings
from cynode.nodemanager.capabilities import SANDBOX_ONLY_LABEL, build_report, detect_host
from cynode.nodemanager.client import HttpControlPlane
from cynode.nodemanager.config import NodeConfig, PskSource
from cynode.nodemanager.runner import NodeManager, Timing
from cynode.nodes.capabilities import capability_hash
from cynode.sandbox import SandboxSettings
from tests.fixtures.nodemanager import NodeDeployment, wait_until
from tests.fixtures.nodes import NODE_PSK
from tests.fixtures.podman import WorkerFactory


class ChangingInference(NodeInference):
    """Reports whatever models the test puts in ``models``."""

    models: tuple[str, ...] = ()

    async def report(self) -> InferenceInfo:
        return InferenceInfo(supported=False, mode="disabled", available_models=list(self.models))


def node_config(slug: str, deployment: NodeDeployment, sandbox: SandboxSettings, state_dir: Path) -> NodeConfig:
    return NodeConfig(
        slug=slug,
        sandbox=sandbox,
        worker_api_host="127.0.0.1",
        worker_api_port=0,
        worker_api_max_request_bytes=None,
        orchestrator_url=deployment.orchestrator_url,
        psk_source=PskSource(),
        state_dir=state_dir,
    )


def test_capability_changes_are_reported_between_heartbeats(
    node_deployment: NodeDeployment, worker_factory: WorkerFactory, tmp_path: Path
) -> None:
    node_deployment.start_orchestrator()
    slug = node_deployment.new_slug()
    worker = worker_factory(configure=False, owner=slug)
    node = node_config(slug, node_deployment, worker.service.settings, tmp_path / "state")
    inference = ChangingInference(InferenceSettings(mode="disabled"), tmp_path / "state")

    async def scenario() -> None:
        client = HttpControlPlane(node_deployment.orchestrator_url)
        manager = NodeManager(
            node,
            worker.service,
            inference,
            client,
            psk=NODE_PSK,
            worker_api_url=worker.base_url,
            timing=Timing(heartbeat_seconds=0.2, capability_check_seconds=0.2),
        )
        await manager.start()
        upkeep = asyncio.create_task(manager.stay_in_touch())
        try:
            inference.models = ("tiny-model",)
            await asyncio.to_thread(
                wait_until,
                lambda: "tiny-model" in node_deployment.dispatchable()[slug].available_models,
                10,
                "the changed capabilities to reach the orchestrator",
            )
        finally:
            upkeep.cancel()
            await client.aclose()

    asyncio.run(scenario())
    row = node_deployment.node_row(slug)
    assert row is not None
    assert row["config_ack_status"] == "applied"
    assert (tmp_path / "state" / "applied_config_version").read_text().strip() == row["config_version"]


def test_node_survives_an_orchestrator_restart(node_deployment: NodeDeployment) -> None:
    node_deployment.orchestrator_overrides["nodes.heartbeat_grace_seconds"] = 3
    first = node_deployment.start_orchestrator()
    node = node_deployment.start_node()
    slug = node_deployment.slugs[0]
    node_deployment.wait_dispatchable(slug)

    first.stop()
    time.sleep(3)  # heartbeats fail meanwhile; the node backs off and keeps running
    assert not node.stack.failed.is_set()
    node_deployment.start_orchestrator()  # same port and database, new signing key: old JWTs get 401

    node_deployment.wait_dispatchable(slug, timeout=60)
    assert not node.stack.failed.is_set()


def test_report_carries_host_facts_and_node_identity(tmp_path: Path) -> None:
    host = detect_host(tmp_path)
    sandbox = SandboxSettings(mode="sandbox_only", max_concurrency=3, mount_root=tmp_path / "mounts")
    node = NodeConfig(
        slug="facts-node",
        name="Facts",
        labels=("trusted",),
        sandbox=sandbox,
        worker_api_host="127.0.0.1",
        worker_api_port=12090,
        worker_api_max_request_bytes=None,
        orchestrator_url="http://127.0.0.1:12082",
        psk_source=PskSource(),
        state_dir=tmp_path,
        worker_api_public_url="http://worker.example:12090",
    )
    report = build_report(node, host, InferenceInfo(supported=False), "http://127.0.0.1:12090/")

    assert report.platform.os == "linux"
    assert report.platform.arch in ("amd64", "arm64")
    assert report.platform.kernel_version
    assert report.compute.cpu_cores >= 1
    assert report.compute.ram_mb > 0
    assert report.compute.storage_free_mb is not None
    assert report.container_runtime is not None
    assert report.container_runtime.runtime == "podman"
    assert report.container_runtime.version
    assert report.node.labels == ["trusted", SANDBOX_ONLY_LABEL]
    assert report.gpu is not None
    assert report.gpu.present is False
    assert report.sandbox is not None
    assert (report.sandbox.supported, report.sandbox.max_concurrency) == (True, 3)
    assert "netns" in report.sandbox.features
    assert report.worker_api is not None
    assert report.worker_api.base_url == "http://worker.example:12090"
    again = build_report(node, detect_host(tmp_path), InferenceInfo(supported=False), "http://127.0.0.1:12090")
    assert capability_hash(again) == capability_hash(report), "an unchanged node must report the same capabilities"


def test_node_beats_at_the_pace_the_orchestrator_asks_for(node_deployment: NodeDeployment) -> None:
    node_deployment.start_orchestrator(**{"nodes.heartbeat_grace_seconds": 2})
    # The node's own settings would beat only every 30 s; the bootstrap's interval must win.
    node = node_deployment.start_node(overrides={"nodes.heartbeat_grace_seconds": 600})
    slug = node_deployment.slugs[0]
    node_deployment.wait_dispatchable(slug)
    time.sleep(5)  # well past the orchestrator's grace period
    assert slug in node_deployment.dispatchable()
    assert not node.stack.failed.is_set()
