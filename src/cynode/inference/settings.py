"""The node startup YAML's ``inference:`` section: which backend serves the node's model and how.

``backend`` chooses among the three backends (all spoken to through the OpenAI-compatible API):

- ``auto`` (default): an existing service when one answers (at ``existing_service_url``, else at
  Ollama's address ``http://127.0.0.1:<ollama_port>``); else the embedded llama.cpp server when
  ``llama-cpp-python`` and the model file are installed; else whatever the orchestrator instructs
  (an Ollama container).
- ``ollama``: an existing service, else the Ollama container the orchestrator instructs.
- ``embedded``: only the embedded llama.cpp server; not being able to start it is fatal.
- ``none``: no inference on this node (reported as not supported).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import msgspec

InferenceMode = Literal["allow", "disabled", "require"]
BackendChoice = Literal["auto", "ollama", "embedded", "none"]

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]

EMBEDDED_MODEL_FILE = "gemma3-270m-q4_k_m.gguf"
DEFAULT_OLLAMA_IMAGE = "docker.io/ollama/ollama"


def default_model_path() -> Path:
    """Where ``scripts/fetch-model.sh`` puts the embedded model: ``$XDG_CACHE_HOME/cynode/models``."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "cynode" / "models" / EMBEDDED_MODEL_FILE


class InferenceSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=False):
    mode: InferenceMode = "allow"
    """Operator override reported as ``inference.mode``; ``disabled`` starts nothing."""
    backend: BackendChoice = "auto"
    existing_service_url: str | None = None
    """OpenAI-compatible base URL (without ``/v1``) of an inference service this node did not start;
    unset, Ollama's default address is probed."""
    embedded_model_path: Path = msgspec.field(default_factory=default_model_path)
    embedded_model_alias: str = "gemma3-270m"
    """The model name the embedded server answers to and the node reports in ``available_models``."""
    embedded_threads: PositiveInt = 2
    start_timeout_seconds: PositiveFloat = 120.0
    """How long a backend may take to answer ``/v1/models`` after it was started."""
    max_concurrent_requests: PositiveInt = 1
    """Chat requests the Worker API inference route sends to the backend at once; more wait their
    turn (llama.cpp serves one at a time and would interrupt a running stream for a newcomer)."""
    chat_timeout_seconds: PositiveFloat = 300.0
    """Longest a chat request may wait for and use the backend on this node."""
    ollama_image: str = DEFAULT_OLLAMA_IMAGE
    """Used when the orchestrator's instruction names no image."""
    ollama_container_name: str = "cynode-ollama"
    ollama_port: PositiveInt = 11434
    """Host port, published on 127.0.0.1 only: the sandbox proxy reaches Ollama there."""
