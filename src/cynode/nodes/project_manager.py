"""Project Manager model selection (orchestrator.md section 5.2), as pure functions.

Inputs are the ``agents.project_manager.model.*`` system settings, the orchestrator's pinned model
setting (which wins over the system setting pin), and the nodes' capability reports. The sliding
scale picks candidate models by the node's total VRAM, then (for an existing service, which loads
nothing on request) whatever the node already serves; a node is told to load the first candidate
(``inference_backend.selected_model``) and counts as ready with any candidate it already lists.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, cast, get_args

from cynode.contracts.nodes import NodeCapabilityReport
from cynode.nodes.repository import PM_SETTING_PREFIX

ExecutionMode = Literal["auto", "force_local", "force_external"]
SelectionMode = Literal["auto_sliding_scale", "fixed_model"]

ORCHESTRATOR_HOST_LABEL = "orchestrator_host"
SMALLEST_MODEL = "qwen3.5:0.8b"
# (minimum total VRAM in MB, candidate models in order of preference)
VRAM_TIERS: tuple[tuple[int, tuple[str, ...]], ...] = (
    (24000, ("qwen3.5:35b", "qwen2.5:32b", "qwen2.5:14b", "qwen3.5:9b", SMALLEST_MODEL)),
    (16000, ("qwen3.5:9b", "qwen2.5:14b", SMALLEST_MODEL)),
    (8000, ("qwen3.5:9b", SMALLEST_MODEL)),
    (0, (SMALLEST_MODEL,)),
)

EXECUTION_MODE_KEY = "selection.execution_mode"
SELECTION_MODE_KEY = "selection.mode"
PREFER_HOST_KEY = "selection.prefer_orchestrator_host"
PINNED_MODEL_KEY = "local_default_ollama_model"


class InvalidProjectManagerSetting(ValueError):
    """A PM system setting holds a value selection cannot use; the message names the key."""


_Choice = TypeVar("_Choice", bound=str)


def _choice(settings: Mapping[str, Any], key: str, allowed: Any, default: _Choice) -> _Choice:
    value = settings.get(key, default)
    choices: tuple[str, ...] = get_args(allowed)
    if value not in choices:
        raise InvalidProjectManagerSetting(
            f"invalid system setting {PM_SETTING_PREFIX}{key}: {value!r} (expected one of {', '.join(choices)})"
        )
    return cast(_Choice, value)


@dataclass(frozen=True)
class ProjectManagerPolicy:
    execution_mode: ExecutionMode = "auto"
    selection_mode: SelectionMode = "auto_sliding_scale"
    prefer_orchestrator_host: bool = True
    pinned_model: str | None = None

    @classmethod
    def from_settings(cls, system_settings: Mapping[str, Any], pinned_model: str | None) -> ProjectManagerPolicy:
        """Read the PM system settings (keys without their prefix); ``pinned_model`` wins over theirs."""
        prefer_host = system_settings.get(PREFER_HOST_KEY, True)
        if not isinstance(prefer_host, bool):
            raise InvalidProjectManagerSetting(
                f"invalid system setting {PM_SETTING_PREFIX}{PREFER_HOST_KEY}: {prefer_host!r} (expected a boolean)"
            )
        setting_pin = system_settings.get(PINNED_MODEL_KEY)
        if setting_pin is not None and not isinstance(setting_pin, str):
            raise InvalidProjectManagerSetting(
                f"invalid system setting {PM_SETTING_PREFIX}{PINNED_MODEL_KEY}: {setting_pin!r} (expected a string)"
            )
        return cls(
            execution_mode=_choice(system_settings, EXECUTION_MODE_KEY, ExecutionMode, "auto"),
            selection_mode=_choice(system_settings, SELECTION_MODE_KEY, SelectionMode, "auto_sliding_scale"),
            prefer_orchestrator_host=prefer_host,
            pinned_model=(pinned_model or setting_pin or "").strip() or None,
        )


def vram_total_mb(report: NodeCapabilityReport) -> int:
    if report.gpu is None or not report.gpu.present:
        return 0
    return sum(device.vram_mb or 0 for device in report.gpu.devices)


def candidate_models(policy: ProjectManagerPolicy, report: NodeCapabilityReport) -> tuple[str, ...]:
    """Models the PM may run on this node, preferred first; empty when ``fixed_model`` has no pin."""
    if policy.pinned_model:
        return (policy.pinned_model,)
    if policy.selection_mode == "fixed_model":
        return ()
    vram = vram_total_mb(report)
    models = next(models for minimum, models in VRAM_TIERS if vram >= minimum)
    if report.inference is not None and report.inference.existing_service:
        # A service the node did not start loads nothing on our say-so, so what it already serves is
        # the remaining choice (e.g. the embedded llama.cpp backend on a laptop).
        served = sorted(set(report.inference.available_models) - set(models))
        models = (*models, *served)
    return models


def model_to_load(policy: ProjectManagerPolicy, report: NodeCapabilityReport) -> str | None:
    """The model a node starting its own inference backend is told to load."""
    return next(iter(candidate_models(policy, report)), None)


class ReportingNode(Protocol):
    @property
    def node_slug(self) -> str: ...

    @property
    def capability(self) -> NodeCapabilityReport: ...


_Node = TypeVar("_Node", bound=ReportingNode)


def choose_pm_node(candidates: Sequence[_Node], prefer_orchestrator_host: bool) -> _Node:
    """The orchestrator host when preferred and present, else the most VRAM; ties by smallest slug."""
    if prefer_orchestrator_host:
        on_host = [c for c in candidates if ORCHESTRATOR_HOST_LABEL in c.capability.node.labels]
        if on_host:
            return min(on_host, key=lambda c: c.node_slug)
    return min(candidates, key=lambda c: (-vram_total_mb(c.capability), c.node_slug))
