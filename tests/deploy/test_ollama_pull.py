"""The node's Ollama container from a registry: pulled with the sandbox images' pull code, started,
probed, and speaking Ollama's API; a pull that cannot succeed fails the start naming why."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from podman import PodmanClient

from cynode.contracts.nodes import InferenceBackend
from cynode.inference.node import InferenceStartError, NodeInference
from cynode.inference.settings import InferenceSettings
from cynode.sandbox import PodmanService
from cynode.sandbox.images import ImageSource, Registry
from tests.fixtures.deploy import LocalRegistry, OllamaSlot, untag
from tests.fixtures.inference import MODEL_ALIAS
from tests.fixtures.stack import free_port


def _node(slot: OllamaSlot, podman: PodmanService, state: Path) -> NodeInference:
    settings = InferenceSettings(backend="ollama", ollama_container_name=slot.container, ollama_port=slot.port)
    return NodeInference(settings, state, podman_url=podman.url)


def _instruction(image: str) -> InferenceBackend:
    return InferenceBackend(enabled=True, variant="cpu", image=image, selected_model=MODEL_ALIAS)


@pytest.fixture
async def ollama_from_registry(
    ollama_in_registry: str,
    local_registry: LocalRegistry,
    ollama_slot: OllamaSlot,
    podman_service: PodmanService,
    tmp_path: Path,
) -> AsyncIterator[NodeInference]:
    """A node's Ollama backend started from the registry's image, as the orchestrator instructs."""
    node = _node(ollama_slot, podman_service, tmp_path)
    before = await node.report()
    assert (before.supported, before.existing_service, before.running) == (True, False, False)
    try:
        await node.apply(_instruction(ollama_in_registry), ImageSource(registries=(Registry(local_registry.url),)))
        yield node
    finally:
        await node.stop()
        untag(ollama_in_registry)  # the feature's scenario pulls it afresh


async def test_the_pulled_container_is_probed_and_reported(
    ollama_from_registry: NodeInference, ollama_in_registry: str, ollama_slot: OllamaSlot, podman_service: PodmanService
) -> None:
    upstream = ollama_from_registry.upstream()
    assert upstream is not None
    assert (upstream.base_url, upstream.model) == (f"http://127.0.0.1:{ollama_slot.port}", MODEL_ALIAS)
    info = await ollama_from_registry.report()
    assert (info.existing_service, info.running, info.available_models) == (False, True, [MODEL_ALIAS])
    with PodmanClient(base_url=podman_service.url) as client:
        container = client.containers.get(ollama_slot.container)
        assert container.attrs["ImageName"] == ollama_in_registry
        ports = container.attrs["HostConfig"]["PortBindings"]["11434/tcp"]
        assert ports == [{"HostIp": "127.0.0.1", "HostPort": str(ollama_slot.port)}]


async def test_the_container_speaks_ollamas_api(ollama_from_registry: NodeInference) -> None:
    upstream = ollama_from_registry.upstream()
    assert upstream is not None
    async with httpx.AsyncClient(base_url=upstream.base_url, timeout=120) as client:
        assert (await client.get("/api/version")).json()["version"]
        assert [m["name"] for m in (await client.get("/api/tags")).json()["models"]] == [MODEL_ALIAS]
        chat = await client.post("/api/chat", json={
            "model": MODEL_ALIAS, "stream": False, "options": {"num_predict": 8},
            "messages": [{"role": "user", "content": "The capital of France is"}],
        })  # fmt: skip
        assert chat.json()["done"] is True
        assert chat.json()["message"]["role"] == "assistant"
        generate = await client.post(
            "/api/generate", json={"model": MODEL_ALIAS, "prompt": "One, two,", "options": {"num_predict": 4}}
        )
        lines = [json.loads(line) for line in generate.text.splitlines()]
        assert generate.headers["content-type"] == "application/x-ndjson"
        assert lines[-1]["done"] is True
        assert all(not line["done"] for line in lines[:-1])
        unknown = await client.post("/api/pull", json={"model": "not-in-the-image:1", "stream": False})
        assert unknown.status_code == 404
        assert "not-in-the-image:1" in unknown.json()["error"]


async def test_a_registry_that_is_down_fails_the_start_with_image_pull_failed(
    ollama_slot: OllamaSlot, podman_service: PodmanService, tmp_path: Path
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    image = f"{down.removeprefix('http://')}/ollama-test:1"
    node = _node(ollama_slot, podman_service, tmp_path)
    with pytest.raises(InferenceStartError, match=rf"inference image {image}: image_pull_failed") as raised:
        await node.apply(_instruction(image), ImageSource(registries=(Registry(down, "pull-token-5e1a"),)))
    assert "pull-token-5e1a" not in str(raised.value)
    with PodmanClient(base_url=podman_service.url) as client:
        assert not client.containers.list(all=True, filters={"name": ollama_slot.container})
    assert node.upstream() is None


async def test_an_image_from_a_registry_the_orchestrator_does_not_name_is_not_pulled(
    local_registry: LocalRegistry, ollama_slot: OllamaSlot, podman_service: PodmanService, tmp_path: Path
) -> None:
    image = local_registry.reference("ollama-test:unlisted")
    node = _node(ollama_slot, podman_service, tmp_path)
    elsewhere = ImageSource(registries=(Registry(f"http://127.0.0.1:{free_port()}"),))
    with pytest.raises(InferenceStartError, match="not among the orchestrator's sandbox registries"):
        await node.apply(_instruction(image), elsewhere)
    with PodmanClient(base_url=podman_service.url) as client:
        assert not client.images.exists(image)
