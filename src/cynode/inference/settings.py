"""The node startup YAML's ``inference:`` section."""

from __future__ import annotations

from typing import Literal

import msgspec

InferenceMode = Literal["allow", "disabled", "require"]


class InferenceSettings(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=False):
    mode: InferenceMode = "allow"
    existing_service_url: str | None = None
    """OpenAI-compatible base URL of an inference service this node did not start."""
