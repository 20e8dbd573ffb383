"""Capability detection: the ``node_capability_report_v1`` this node sends, built from host facts.

Every value is observed (``/proc``, the OS release file, the container runtime, GPU tools when
installed), never hard-coded. Values that drift by themselves (free disk space) are rounded so
that a report only changes when the node's capabilities really do; the orchestrator hashes reports
and keeps one history row per distinct state. Detection blocks (it runs tools), so callers run
``detect_host`` in a worker thread.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cynode.contracts.nodes import (
    ComputeInfo,
    ContainerRuntimeInfo,
    GpuDevice,
    GpuInfo,
    InferenceInfo,
    NodeCapabilityReport,
    NodeIdentity,
    PlatformInfo,
    SandboxSupport,
    WorkerApiEndpoint,
)
from cynode.nodemanager.config import NodeConfig

SANDBOX_ONLY_LABEL = "sandbox_only"
_TOOL_TIMEOUT_SECONDS = 5
_STORAGE_GRANULARITY_MB = 1024
_ARCH_NAMES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}
_MIB = 1024 * 1024


@dataclass(frozen=True)
class HostFacts:
    """What the host is; everything in a report except the node's own config and inference."""

    platform: PlatformInfo
    compute: ComputeInfo
    container_runtime: ContainerRuntimeInfo
    gpu: GpuInfo
    sandbox_features: tuple[str, ...]


def _run_tool(*argv: str) -> str | None:
    """stdout of a tool that may be absent or broken; None when it cannot answer."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=_TOOL_TIMEOUT_SECONDS, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def _meminfo_mb(field: str) -> int | None:
    try:
        lines = Path("/proc/meminfo").read_text(encoding="ascii").splitlines()
    except OSError:
        return None
    for line in lines:
        name, _, value = line.partition(":")
        if name == field:
            return int(value.split()[0]) // 1024  # the file counts kB
    return None


def _cpu_model() -> str | None:
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        name, _, value = line.partition(":")
        if name.strip() == "model name":
            return value.strip()
    return None


def _distro() -> str | None:
    try:
        release = platform.freedesktop_os_release()
    except OSError:
        return None
    return release.get("PRETTY_NAME") or release.get("NAME")


def _storage_free_mb(path: Path) -> int | None:
    existing = next((candidate for candidate in (path, *path.parents) if candidate.exists()), None)
    if existing is None:
        return None
    free_mb = shutil.disk_usage(existing).free // _MIB
    return free_mb - free_mb % _STORAGE_GRANULARITY_MB


def _container_runtime() -> ContainerRuntimeInfo:
    version = _run_tool("podman", "version", "--format", "{{.Client.Version}}")
    return ContainerRuntimeInfo(
        runtime="podman",
        version=version.strip() if version else None,
        rootless_supported=True,
        rootless_enabled=os.geteuid() != 0,
    )


def _nvidia_devices() -> list[GpuDevice]:
    output = _run_tool("nvidia-smi", "--query-gpu=name,memory.total,compute_cap", "--format=csv,noheader,nounits")
    devices = []
    for line in (output or "").splitlines():
        fields = [part.strip() for part in line.split(",")]
        if len(fields) < 2 or not fields[0]:
            continue
        capability = fields[2] if len(fields) > 2 and fields[2] else "unknown"
        vram = int(float(fields[1])) if fields[1].replace(".", "", 1).isdigit() else None
        devices.append(
            GpuDevice(vendor="NVIDIA", model=fields[0], vram_mb=vram, features={"cuda_capability": capability})
        )
    return devices


def _rocm_devices() -> list[GpuDevice]:
    output = _run_tool("rocm-smi", "--showproductname", "--showmeminfo", "vram", "--json")
    try:
        cards = json.loads(output) if output else {}
    except json.JSONDecodeError:
        return []
    devices = []
    for name, card in sorted(cards.items()) if isinstance(cards, dict) else ():
        if not name.startswith("card") or not isinstance(card, dict):
            continue
        vram_bytes = str(card.get("VRAM Total Memory (B)", ""))
        devices.append(
            GpuDevice(
                vendor="AMD",
                model=card.get("Card series") or card.get("Card model"),
                vram_mb=int(vram_bytes) // _MIB if vram_bytes.isdigit() else None,
                features={"rocm_version": "unknown"},
            )
        )
    return devices


def _gpu() -> GpuInfo:
    devices = _rocm_devices() + _nvidia_devices()
    vram = [device.vram_mb for device in devices if device.vram_mb is not None]
    return GpuInfo(present=bool(devices), devices=devices, total_vram_mb=sum(vram) if vram else None)


def _sandbox_features() -> tuple[str, ...]:
    # Sandboxes run with no network namespace peers; seccomp and cgroup v2 depend on the kernel.
    features = ["netns"]
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        status = ""
    if "Seccomp:" in status:
        features.append("seccomp")
    if Path("/sys/fs/cgroup/cgroup.controllers").exists():
        features.append("cgroups_v2")
    return tuple(features)


def detect_host(storage_path: Path) -> HostFacts:
    """Observe the host (blocking: reads /proc and runs the runtime and GPU tools)."""
    machine = platform.machine()
    return HostFacts(
        platform=PlatformInfo(
            os=platform.system().lower(),
            arch=_ARCH_NAMES.get(machine, machine.lower()),
            distro=_distro(),
            kernel_version=platform.release(),
        ),
        compute=ComputeInfo(
            cpu_cores=os.cpu_count() or 1,
            ram_mb=_meminfo_mb("MemTotal") or 0,
            cpu_model=_cpu_model(),
            storage_free_mb=_storage_free_mb(storage_path),
        ),
        container_runtime=_container_runtime(),
        gpu=_gpu(),
        sandbox_features=_sandbox_features(),
    )


def build_report(
    node: NodeConfig, host: HostFacts, inference: InferenceInfo, worker_api_url: str
) -> NodeCapabilityReport:
    """The capability report for ``node`` on ``host``; ``worker_api_url`` is the bound Worker API URL."""
    sandbox = node.sandbox
    sandbox_only = sandbox.mode == "sandbox_only"
    labels = list(node.labels)
    if sandbox_only and SANDBOX_ONLY_LABEL not in labels:
        labels.append(SANDBOX_ONLY_LABEL)
    return NodeCapabilityReport(
        version=1,
        reported_at=datetime.now(UTC).replace(microsecond=0),
        node=NodeIdentity(node_slug=node.slug, name=node.name, labels=labels),
        platform=host.platform,
        compute=host.compute,
        container_runtime=host.container_runtime,
        # A sandbox-only node offers no GPU for inference (upstream rule for such nodes); neither does one
        # whose operator set inference.allow_gpu: false, so the orchestrator never picks a GPU variant.
        gpu=GpuInfo(present=False) if sandbox_only or not node.allow_gpu else host.gpu,
        sandbox=SandboxSupport(
            supported=sandbox.mode != "disabled",
            features=list(host.sandbox_features),
            max_concurrency=sandbox.max_concurrency,
        ),
        inference=inference,
        worker_api=WorkerApiEndpoint(base_url=node.worker_api_public_url or worker_api_url.rstrip("/")),
    )
