"""Building a node's configuration: pure functions from its latest report and orchestrator policy.

The effective content (everything but ``config_version`` and ``issued_at``) is hashed; the caller
mints a new ``config_version`` only when that hash changes. The ``inference_backend`` decision
follows the orchestrator inference container decision table, first matching step wins:

1. ``inference.existing_service`` is true: start nothing (the node already has a service).
2. ``inference.mode`` is ``disabled``: start nothing (operator override on the node).
3. ``inference.supported`` is not true (missing counts as unsupported): start nothing.
4. ``node.labels`` contains ``sandbox_only``: start nothing.
5. Mandatory policy disables local inference globally, for the slug or for one of its labels; or
   the optional variant allowlist leaves no usable variant (ignored when the node says ``require``).
6. Otherwise start it, with the variant from the GPU report (ROCm > CUDA > cpu over all devices)
   and the image configured for that variant.

"Start nothing" omits ``inference_backend`` entirely.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import msgspec
from ulid import ULID

from cynode.contracts.codec import encode_canonical
from cynode.contracts.nodes import (
    ConfigEndpoints,
    ConfigOrchestrator,
    GpuDevice,
    InferenceBackend,
    InferenceInfo,
    InferenceVariant,
    NodeCapabilityReport,
    NodeConfigurationPayload,
    NodeConstraints,
    NodePolicy,
    SandboxPolicy,
    SandboxRegistry,
    WorkerApiConfig,
)
from cynode.nodes.settings import NodePolicySettings, SandboxPolicySettings

SANDBOX_ONLY_LABEL = "sandbox_only"
ALL_VARIANTS: frozenset[InferenceVariant] = frozenset({"rocm", "cuda", "cpu"})


def _is_rocm(device: GpuDevice) -> bool:
    return "rocm_version" in device.features or "amd" in (device.vendor or "").lower()


def _is_cuda(device: GpuDevice) -> bool:
    return "cuda_capability" in device.features or "nvidia" in (device.vendor or "").lower()


def hardware_variants(report: NodeCapabilityReport) -> list[InferenceVariant]:
    """Variants the node's hardware can run, most preferred first; ``cpu`` always last."""
    devices = report.gpu.devices if report.gpu is not None and report.gpu.present else []
    variants: list[InferenceVariant] = []
    if any(_is_rocm(device) for device in devices):
        variants.append("rocm")
    if any(_is_cuda(device) for device in devices):
        variants.append("cuda")
    variants.append("cpu")
    return variants


def _locally_disabled_by_policy(report: NodeCapabilityReport, policy: NodePolicySettings) -> bool:
    return (
        not policy.local_inference
        or report.node.node_slug in policy.local_inference_disabled_nodes
        or any(label in policy.local_inference_disabled_labels for label in report.node.labels)
    )


def image_for(variant: InferenceVariant, policy: NodePolicySettings) -> str | None:
    images = {
        "cpu": policy.inference_image_cpu,
        "cuda": policy.inference_image_cuda,
        "rocm": policy.inference_image_rocm,
    }
    return images[variant] or None


def decide_inference_backend(
    report: NodeCapabilityReport, policy: NodePolicySettings, selected_model: str | None
) -> InferenceBackend | None:
    """The instruction to start a node-local inference backend, or None for "start nothing"."""
    inference = report.inference or InferenceInfo()
    if inference.existing_service or inference.mode == "disabled" or inference.supported is not True:
        return None
    if SANDBOX_ONLY_LABEL in report.node.labels or _locally_disabled_by_policy(report, policy):
        return None
    allowed = ALL_VARIANTS if inference.mode == "require" else policy.inference_variants
    variant = next((v for v in hardware_variants(report) if v in allowed), None)
    if variant is None:
        return None
    return InferenceBackend(
        enabled=True,
        variant=variant,
        image=image_for(variant, policy),
        port=policy.inference_port,
        selected_model=selected_model,
    )


class ConfigContent(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The part of ``node_configuration_payload_v1`` that ``config_version`` versions."""

    node_slug: str
    orchestrator: ConfigOrchestrator
    policy: NodePolicy
    worker_api: WorkerApiConfig
    constraints: NodeConstraints
    inference_backend: InferenceBackend | None = None
    sandbox_registries: list[SandboxRegistry] = []
    require_digest_pinning: bool | None = None


def build_config_content(
    *,
    report: NodeCapabilityReport,
    policy: NodePolicySettings,
    base_url: str,
    report_url: str,
    worker_api_target_url: str | None,
    bearer_token: str,
    selected_model: str | None,
) -> ConfigContent:
    sandbox = policy.sandbox
    return ConfigContent(
        node_slug=report.node.node_slug,
        orchestrator=ConfigOrchestrator(
            base_url=base_url,
            endpoints=ConfigEndpoints(worker_api_target_url=worker_api_target_url or "", node_report_url=report_url),
        ),
        policy=NodePolicy(
            sandbox=SandboxPolicy(
                allowed_images=sandbox.allowed_images,
                default_network_policy=sandbox.default_network_policy,
                allow_privileged=sandbox.allow_privileged,
                allow_host_network=sandbox.allow_host_network,
            )
        ),
        worker_api=WorkerApiConfig(orchestrator_bearer_token=bearer_token),
        constraints=NodeConstraints(
            max_request_bytes=policy.max_request_bytes, max_job_timeout_seconds=policy.max_job_timeout_seconds
        ),
        inference_backend=decide_inference_backend(report, policy, selected_model),
        sandbox_registries=_sandbox_registries(sandbox),
        require_digest_pinning=sandbox.require_digest_pinning or None,
    )


def _sandbox_registries(sandbox: SandboxPolicySettings) -> list[SandboxRegistry]:
    tokens = sandbox.registry_tokens()
    return [SandboxRegistry(registry_url=url, pull_token=tokens.get(url)) for url in sandbox.registries]


def content_hash(content: ConfigContent) -> str:
    return "sha256:" + hashlib.sha256(encode_canonical(content)).hexdigest()


def configuration_payload(content: ConfigContent, config_version: str, issued_at: datetime) -> NodeConfigurationPayload:
    return NodeConfigurationPayload(
        version=1,
        config_version=config_version,
        issued_at=issued_at,
        node_slug=content.node_slug,
        orchestrator=content.orchestrator,
        policy=content.policy,
        worker_api=content.worker_api,
        inference_backend=content.inference_backend,
        constraints=content.constraints,
        sandbox_registries=content.sandbox_registries,
        require_digest_pinning=content.require_digest_pinning,
    )


def next_config_version(previous: str | None) -> str:
    """A new ULID that sorts after ``previous`` even when minted in the same millisecond or on a
    host whose clock is behind the one that minted ``previous``."""
    candidate = ULID()
    if previous is None or str(candidate) > previous:
        return str(candidate)
    return str(ULID.from_timestamp(ULID.from_str(previous).milliseconds + 1))
