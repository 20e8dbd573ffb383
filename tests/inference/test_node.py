"""What the node reports about inference, what the orchestrator decides from it, and fail-fast."""

from __future__ import annotations

from pathlib import Path

import pytest

from cynode.contracts.nodes import InferenceBackend
from cynode.inference.node import InferenceStartError, NodeInference
from cynode.inference.ollama import ollama_container_args
from cynode.inference.settings import InferenceSettings
from tests.fixtures.inference import MODEL_ALIAS, embedded_settings, orchestrator_instruction

UNPULLABLE_IMAGE = "docker.io/ollama/ollama:cynode-test"


def missing_model(tmp_path: Path) -> InferenceSettings:
    return embedded_settings(backend="auto", embedded_model_path=tmp_path / "absent.gguf")


async def test_an_existing_service_is_used_and_reported(embedded_inference: NodeInference, tmp_path: Path) -> None:
    existing_url = embedded_inference.upstream_url()
    node = NodeInference(InferenceSettings(backend="ollama", existing_service_url=existing_url), tmp_path)
    info = await node.report()
    assert (info.existing_service, info.running, info.available_models) == (True, True, [MODEL_ALIAS])
    assert node.upstream_url() == existing_url
    await node.apply(InferenceBackend(enabled=True, variant="cpu", image=UNPULLABLE_IMAGE))  # ignored: one backend
    await node.stop()


async def test_auto_without_a_model_asks_the_orchestrator_for_a_container(tmp_path: Path) -> None:
    node = NodeInference(missing_model(tmp_path), tmp_path)
    info = await node.report()
    assert (info.supported, info.existing_service, info.running) == (True, False, False)
    instruction = orchestrator_instruction(info)
    assert instruction is not None
    assert instruction.variant == "cpu"
    assert node.upstream() is None


async def test_an_embedded_backend_that_cannot_start_fails_fast(tmp_path: Path) -> None:
    node = NodeInference(embedded_settings(embedded_model_path=tmp_path / "absent.gguf"), tmp_path)
    info = await node.report()
    assert not info.running
    with pytest.raises(InferenceStartError, match=r"absent\.gguf .*scripts/fetch-model\.sh"):
        await node.apply(None)


@pytest.mark.parametrize(
    "settings",
    [
        InferenceSettings(mode="disabled"),
        InferenceSettings(mode="disabled", backend="embedded"),
        InferenceSettings(backend="none"),
    ],
)
async def test_a_node_that_refuses_inference_refuses_the_instruction(
    tmp_path: Path, settings: InferenceSettings
) -> None:
    node = NodeInference(settings, tmp_path)
    info = await node.report()
    assert not info.running
    assert orchestrator_instruction(info) is None
    await node.apply(None)
    assert node.upstream() is None
    with pytest.raises(InferenceStartError, match="refuse"):
        await node.apply(InferenceBackend(enabled=True, variant="cpu"))


@pytest.mark.parametrize(
    ("variant", "devices", "groups"),
    [
        ("cpu", None, None),
        ("cuda", ["nvidia.com/gpu=all"], None),
        ("rocm", ["/dev/kfd:/dev/kfd:rwm", "/dev/dri:/dev/dri:rwm"], ["video"]),
    ],
)
def test_the_variant_picks_the_gpu_access_of_the_container(
    variant: str, devices: list[str] | None, groups: list[str] | None
) -> None:
    instruction = InferenceBackend(enabled=True, variant=variant, env={"B": "2", "A": "1"})  # type: ignore[arg-type]
    args = ollama_container_args(InferenceSettings(), instruction)
    assert args.get("devices") == devices
    assert args.get("group_add") == groups
    assert args["image"] == "docker.io/ollama/ollama"
    assert args["ports"] == {"11434/tcp": ("127.0.0.1", 11434)}
    assert list(args["environment"]) == ["A", "B"]
