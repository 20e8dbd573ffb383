"""Settings of the node control plane (the ``nodes:`` section; env ``CYNODE_NODES_*``)."""

from __future__ import annotations

from typing import Annotated

import msgspec

PositiveInt = Annotated[int, msgspec.Meta(gt=0)]


class NodePolicySettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    node_jwt_ttl_seconds: PositiveInt = 24 * 3600
    heartbeat_grace_seconds: PositiveInt = 90
    worker_api_target_url: str | None = None
    """Operator override of every node's dispatch URL."""
    inference_image_cpu: str = "docker.io/ollama/ollama"
    inference_image_cuda: str = "docker.io/ollama/ollama"
    inference_image_rocm: str = "docker.io/ollama/ollama:rocm"
    max_job_timeout_seconds: PositiveInt | None = None
    max_request_bytes: PositiveInt | None = None
