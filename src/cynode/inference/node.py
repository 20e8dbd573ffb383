"""The node's inference backend as the node manager drives it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cynode.contracts.nodes import InferenceBackend, InferenceInfo
from cynode.inference.settings import InferenceSettings


class InferenceStartError(RuntimeError):
    """The backend the config asks for could not start; the message is the ack's error text."""


@dataclass
class NodeInference:
    settings: InferenceSettings
    state_dir: Path
    _upstream_url: str | None = field(default=None, init=False)

    async def report(self) -> InferenceInfo:
        """What the capability report says about inference on this node right now."""
        return InferenceInfo(supported=False, mode=self.settings.mode, existing_service=False, running=False)

    async def apply(self, instruction: InferenceBackend | None) -> None:
        """Start (or keep) the backend the config instructs; raise InferenceStartError when it cannot."""
        if instruction is not None and instruction.enabled:
            raise InferenceStartError("this node has no inference backend to start")

    def upstream_url(self) -> str | None:
        """Base URL of the OpenAI-compatible API the sandbox proxy forwards to, once one runs."""
        return self._upstream_url

    async def stop(self) -> None:
        return None
