"""Pure decisions: capability hash, inference backend table, config versions, PM model selection."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import msgspec
import pytest
from ulid import ULID

from cynode.contracts.codec import convert
from cynode.contracts.nodes import NodeCapabilityReport
from cynode.crypto import SecretBox
from cynode.nodes.capabilities import capability_hash
from cynode.nodes.config import decide_inference_backend, next_config_version
from cynode.nodes.dispatchable import DispatchableNode
from cynode.nodes.project_manager import (
    InvalidProjectManagerSetting,
    ProjectManagerPolicy,
    candidate_models,
    choose_pm_node,
    model_to_load,
)
from cynode.nodes.readiness import (
    EXTERNAL_KEYS_UNUSED,
    NO_EXTERNAL_PATH,
    NO_INFERENCE_PATH,
    NO_PINNED_MODEL,
    inference_readiness,
)
from cynode.nodes.settings import NodePolicySettings
from tests.fixtures.nodes import CUDA_DEVICE, PM_MODEL, ROCM_DEVICE, capability_report

POLICY = NodePolicySettings()
BOX = SecretBox(b"k" * 32)


def report(slug: str = "node-a", **options: Any) -> NodeCapabilityReport:
    return convert(capability_report(slug, **options), NodeCapabilityReport)


# --- capability_hash ---


def test_capability_hash_is_sha256_of_sorted_compact_json_without_reported_at() -> None:
    raw = capability_report("node-a")
    raw["node"]["name"] = "Bänkchen im Labor"
    typed = convert(raw, NodeCapabilityReport)
    canonical = msgspec.to_builtins(typed)
    del canonical["reported_at"]
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert capability_hash(typed) == "sha256:" + expected


def test_capability_hash_ignores_reported_at_and_key_order_but_not_content() -> None:
    first = capability_report("node-a")
    later = {**dict(reversed(list(first.items()))), "reported_at": "2030-01-01T00:00:00Z"}
    changed = capability_report("node-a", inference_running=True)
    first_hash, later_hash, changed_hash = (
        capability_hash(convert(raw, NodeCapabilityReport)) for raw in (first, later, changed)
    )
    assert first_hash == later_hash
    assert changed_hash != first_hash


# --- inference_backend decision table ---


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"existing_service": True}, "step 1: existing service"),
        ({"inference_mode": "disabled"}, "step 2: operator override"),
        ({"inference_supported": False}, "step 3: not supported"),
        ({"inference_supported": None}, "step 3: missing counts as not supported"),
        ({"labels": ["gpu", "sandbox_only"]}, "step 4: sandbox-only label"),
    ],
)
def test_nodes_that_must_not_start_inference_get_no_instruction(options: dict[str, Any], reason: str) -> None:
    assert decide_inference_backend(report(**options), POLICY, PM_MODEL) is None, reason


def test_existing_service_wins_over_require_mode() -> None:
    assert decide_inference_backend(report(existing_service=True, inference_mode="require"), POLICY, None) is None


def test_sandbox_only_label_is_case_sensitive() -> None:
    assert decide_inference_backend(report(labels=["Sandbox_Only"]), POLICY, None) is not None


@pytest.mark.parametrize(
    "policy",
    [
        NodePolicySettings(local_inference=False),
        NodePolicySettings(local_inference_disabled_nodes=["node-a"]),
        NodePolicySettings(local_inference_disabled_labels=["edge"]),
    ],
)
def test_mandatory_policy_disables_even_in_require_mode(policy: NodePolicySettings) -> None:
    node = report(labels=["edge"], inference_mode="require")
    assert decide_inference_backend(node, policy, None) is None


def test_cpu_node_gets_cpu_variant_image_port_and_model() -> None:
    backend = decide_inference_backend(report(), POLICY, PM_MODEL)
    assert backend is not None
    assert (backend.enabled, backend.variant, backend.image, backend.port, backend.selected_model) == (
        True,
        "cpu",
        "docker.io/ollama/ollama",
        11434,
        PM_MODEL,
    )


@pytest.mark.parametrize(
    ("devices", "variant", "image"),
    [
        ([CUDA_DEVICE], "cuda", "registry.test/ollama:cuda"),
        ([ROCM_DEVICE], "rocm", "registry.test/ollama:rocm"),
        # ROCm > CUDA > cpu over every device, not just the first one.
        ([CUDA_DEVICE, ROCM_DEVICE], "rocm", "registry.test/ollama:rocm"),
        ([{"vendor": "NVIDIA Corporation", "model": "T4"}], "cuda", "registry.test/ollama:cuda"),
        ([{"vendor": "Intel", "model": "Arc A770"}], "cpu", "registry.test/ollama:cpu"),
    ],
)
def test_variant_follows_the_gpu_report_and_image_the_variant(
    devices: list[dict[str, Any]], variant: str, image: str
) -> None:
    policy = NodePolicySettings(
        inference_image_cpu="registry.test/ollama:cpu",
        inference_image_cuda="registry.test/ollama:cuda",
        inference_image_rocm="registry.test/ollama:rocm",
    )
    backend = decide_inference_backend(report(gpu_devices=devices), policy, None)
    assert backend is not None
    assert (backend.variant, backend.image) == (variant, image)


def test_gpu_devices_count_only_when_the_gpu_is_present() -> None:
    raw = capability_report("node-a", gpu_devices=[CUDA_DEVICE])
    raw["gpu"]["present"] = False
    backend = decide_inference_backend(convert(raw, NodeCapabilityReport), POLICY, None)
    assert backend is not None
    assert backend.variant == "cpu"


def test_variant_allowlist_falls_back_and_can_leave_nothing_unless_required() -> None:
    cuda_node = report(gpu_devices=[CUDA_DEVICE])
    cpu_only = NodePolicySettings(inference_variants=frozenset({"cpu"}))
    backend = decide_inference_backend(cuda_node, cpu_only, None)
    assert backend is not None
    assert backend.variant == "cpu"
    gpu_only = NodePolicySettings(inference_variants=frozenset({"rocm"}))
    assert decide_inference_backend(cuda_node, gpu_only, None) is None
    required = decide_inference_backend(report(gpu_devices=[CUDA_DEVICE], inference_mode="require"), gpu_only, None)
    assert required is not None
    assert required.variant == "cuda"


def test_unset_image_is_omitted_so_the_node_uses_its_default() -> None:
    backend = decide_inference_backend(report(), NodePolicySettings(inference_image_cpu=None), None)
    assert backend is not None
    assert backend.image is None
    assert "image" not in msgspec.to_builtins(backend)


# --- config_version ---


def test_config_versions_are_ulids_that_sort_after_the_previous_one() -> None:
    first = next_config_version(None)
    assert len(first) == 26
    assert str(ULID.from_str(first)) == first
    successor = next_config_version(first)
    assert successor > first
    future = str(ULID.from_timestamp(ULID.from_str(first).milliseconds + 3_600_000))
    assert next_config_version(future) > future  # a clock behind the previous minter still moves forward


# --- PM model selection ---


@pytest.mark.parametrize(
    ("vram", "models"),
    [
        (0, ("qwen3.5:0.8b",)),
        (8000, ("qwen3.5:9b", "qwen3.5:0.8b")),
        (16000, ("qwen3.5:9b", "qwen2.5:14b", "qwen3.5:0.8b")),
        (24564, ("qwen3.5:35b", "qwen2.5:32b", "qwen2.5:14b", "qwen3.5:9b", "qwen3.5:0.8b")),
    ],
)
def test_sliding_scale_by_total_vram(vram: int, models: tuple[str, ...]) -> None:
    devices = [{"vendor": "NVIDIA", "vram_mb": vram, "features": {"cuda_capability": "8.9"}}] if vram else []
    assert candidate_models(ProjectManagerPolicy(), report(gpu_devices=devices)) == models


def test_vram_sums_over_devices() -> None:
    split = [{**CUDA_DEVICE, "vram_mb": 9000}, {**CUDA_DEVICE, "vram_mb": 9000}]
    assert candidate_models(ProjectManagerPolicy(), report(gpu_devices=split))[0] == "qwen3.5:9b"
    assert len(candidate_models(ProjectManagerPolicy(), report(gpu_devices=split))) == 3


def test_an_existing_service_falls_back_to_the_models_it_serves() -> None:
    embedded = report(existing_service=True, inference_running=True, available_models=["gemma3-270m", "a-model"])
    assert candidate_models(ProjectManagerPolicy(), embedded) == ("qwen3.5:0.8b", "a-model", "gemma3-270m")
    node = dispatchable("laptop", existing_service=True, inference_running=True, available_models=["gemma3-270m"])
    assert inference_readiness([node], external_configured=False, policy=ProjectManagerPolicy()) is None
    # A node that starts its own backend is told what to load, so it gets no such fallback.
    managed = report(inference_running=True, available_models=["gemma3-270m"])
    assert candidate_models(ProjectManagerPolicy(), managed) == ("qwen3.5:0.8b",)
    # A pin still means exactly that model.
    assert candidate_models(ProjectManagerPolicy(pinned_model="tinyllama"), embedded) == ("tinyllama",)


def test_orchestrator_setting_pin_wins_over_system_setting_pin() -> None:
    settings = {"local_default_ollama_model": "llama3.2:1b"}
    assert ProjectManagerPolicy.from_settings(settings, None).pinned_model == "llama3.2:1b"
    assert ProjectManagerPolicy.from_settings(settings, "tinyllama").pinned_model == "tinyllama"
    assert model_to_load(ProjectManagerPolicy.from_settings(settings, None), report()) == "llama3.2:1b"


def test_fixed_model_without_pin_selects_nothing() -> None:
    policy = ProjectManagerPolicy.from_settings({"selection.mode": "fixed_model"}, None)
    assert candidate_models(policy, report()) == ()
    assert model_to_load(policy, report()) is None


@pytest.mark.parametrize(
    "settings",
    [
        {"selection.execution_mode": "sometimes"},
        {"selection.mode": 3},
        {"selection.prefer_orchestrator_host": "yes"},
        {"local_default_ollama_model": ["a"]},
    ],
)
def test_invalid_pm_settings_name_the_key(settings: dict[str, Any]) -> None:
    with pytest.raises(InvalidProjectManagerSetting, match=r"agents\.project_manager\.model\."):
        ProjectManagerPolicy.from_settings(settings, None)


def dispatchable(slug: str, **options: Any) -> DispatchableNode:
    return DispatchableNode(
        node_id=uuid.uuid4(),
        node_slug=slug,
        worker_api_target_url=f"http://{slug}:12090",
        capability=report(slug, **options),
        _sealed_bearer_token=b"",
        _secret_box=BOX,
    )


def test_pm_node_prefers_the_orchestrator_host_then_vram_then_slug() -> None:
    small = dispatchable("b-small")
    big = dispatchable("c-big", gpu_devices=[CUDA_DEVICE])
    also_big = dispatchable("a-big", gpu_devices=[CUDA_DEVICE])
    host = dispatchable("z-host", labels=["orchestrator_host"])
    assert choose_pm_node([small, big, also_big, host], prefer_orchestrator_host=True) is host
    assert choose_pm_node([small, big, also_big, host], prefer_orchestrator_host=False) is also_big
    assert choose_pm_node([small, big], prefer_orchestrator_host=True) is big


# --- readiness decision ---


def test_readiness_needs_a_running_backend_listing_the_pm_model() -> None:
    policy = ProjectManagerPolicy()
    assert inference_readiness([], external_configured=False, policy=policy) == NO_INFERENCE_PATH
    idle = dispatchable("node-a")
    assert inference_readiness([idle], external_configured=False, policy=policy) == NO_INFERENCE_PATH
    loading = dispatchable("node-a", inference_running=True)
    assert (
        inference_readiness([loading], external_configured=False, policy=policy)
        == "PM model qwen3.5:0.8b not yet available on node node-a (waiting for its inference backend to load it)"
    )
    serving = dispatchable("node-a", inference_running=True, available_models=["other", PM_MODEL])
    assert inference_readiness([serving], external_configured=False, policy=policy) is None


def test_readiness_accepts_any_sliding_scale_candidate() -> None:
    node = dispatchable("node-a", inference_running=True, gpu_devices=[CUDA_DEVICE], available_models=["qwen3.5:9b"])
    assert inference_readiness([node], external_configured=False, policy=ProjectManagerPolicy()) is None


def test_readiness_follows_the_execution_mode() -> None:
    loading = dispatchable("node-a", inference_running=True)
    auto, local, external = (
        ProjectManagerPolicy(execution_mode="auto"),
        ProjectManagerPolicy(execution_mode="force_local"),
        ProjectManagerPolicy(execution_mode="force_external"),
    )
    serving = dispatchable("node-a", inference_running=True, available_models=[PM_MODEL])
    # External keys are stored but never used, so they are no inference path in any mode.
    assert inference_readiness([], external_configured=True, policy=auto) == EXTERNAL_KEYS_UNUSED
    assert inference_readiness([loading], external_configured=True, policy=auto) is not None
    assert inference_readiness([], external_configured=True, policy=local) == EXTERNAL_KEYS_UNUSED
    assert inference_readiness([serving], external_configured=True, policy=local) is None
    assert inference_readiness([loading], external_configured=False, policy=external) == NO_EXTERNAL_PATH
    assert inference_readiness([serving], external_configured=True, policy=external) == NO_EXTERNAL_PATH


def test_readiness_with_fixed_model_and_no_pin_says_what_to_set() -> None:
    node = dispatchable("node-a", inference_running=True, available_models=[PM_MODEL])
    policy = ProjectManagerPolicy(selection_mode="fixed_model")
    assert inference_readiness([node], external_configured=False, policy=policy) == NO_PINNED_MODEL


def test_dispatchable_node_concurrency_and_token() -> None:
    node_id = uuid.uuid4()
    node = DispatchableNode(
        node_id=node_id,
        node_slug="node-a",
        worker_api_target_url="http://node-a:12090",
        capability=report(max_concurrency=3),
        _sealed_bearer_token=BOX.seal("s3cret", associated_data=str(node_id)),
        _secret_box=BOX,
    )
    assert node.sandbox_max_concurrency == 3
    assert node.bearer_token() == "s3cret"
    assert "s3cret" not in repr(node)
    raw = capability_report("node-b")
    del raw["sandbox"]
    assert dispatchable("node-b").sandbox_max_concurrency == 2
    assert (
        DispatchableNode(
            node_id=node_id,
            node_slug="node-b",
            worker_api_target_url="http://node-b:12090",
            capability=convert(raw, NodeCapabilityReport),
            _sealed_bearer_token=b"",
            _secret_box=BOX,
        ).sandbox_max_concurrency
        == 0
    )
