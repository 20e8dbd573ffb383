"""The Ollama backend: a podman container the orchestrator instructs the node to start.

Owns the container's profile: the image from ``inference_backend.image`` (else the node's
default), GPU access from ``inference_backend.variant`` (``cuda``: the CDI device
``nvidia.com/gpu=all``; ``rocm``: ``/dev/kfd`` and ``/dev/dri`` with group ``video``; ``cpu``:
none), the instruction's env, a named volume for models, and the API port published on 127.0.0.1
only (the sandbox proxy reaches it there; sandboxes never do). The image is pulled when it is not
present, by the sandbox images' pull code (``cynode.sandbox.images``): from the orchestrator's
``sandbox_registries`` with their TLS choice and pull tokens. An orchestrator that names no
registries leaves the pull to podman's own registry configuration. A failed pull or start is an
``InferenceStartError`` naming the image.

Blocking; call from a worker thread.
"""

from __future__ import annotations

import logging
from typing import Any

from podman import PodmanClient
from podman.errors import APIError, ImageNotFound

from cynode.contracts.nodes import InferenceBackend
from cynode.inference.errors import InferenceStartError
from cynode.inference.settings import InferenceSettings
from cynode.sandbox.images import ImagePullError, ImageSource

log = logging.getLogger(__name__)

OLLAMA_API_PORT = 11434
MODELS_DIR = "/root/.ollama"
LABEL_ROLE = "io.cynode.inference.role"
_ROCM_DEVICES = ("/dev/kfd", "/dev/dri")
_CUDA_CDI_DEVICE = "nvidia.com/gpu=all"


def ollama_image(settings: InferenceSettings, instruction: InferenceBackend) -> str:
    return instruction.image or settings.ollama_image


def ollama_base_url(settings: InferenceSettings) -> str:
    return f"http://127.0.0.1:{settings.ollama_port}"


def ollama_container_args(settings: InferenceSettings, instruction: InferenceBackend) -> dict[str, Any]:
    """podman-py ``containers.create`` arguments for the instructed Ollama container."""
    args: dict[str, Any] = {
        "image": ollama_image(settings, instruction),
        "name": settings.ollama_container_name,
        "detach": True,
        "environment": dict(sorted(instruction.env.items())),
        "ports": {f"{OLLAMA_API_PORT}/tcp": ("127.0.0.1", settings.ollama_port)},
        "volumes": {f"{settings.ollama_container_name}-models": {"bind": MODELS_DIR, "mode": "rw"}},
        "labels": {LABEL_ROLE: "ollama"},
    }
    if instruction.variant == "cuda":
        args["devices"] = [_CUDA_CDI_DEVICE]
    elif instruction.variant == "rocm":
        args["devices"] = [f"{device}:{device}:rwm" for device in _ROCM_DEVICES]
        args["group_add"] = ["video"]
    return args


def start_ollama_container(
    podman_url: str, settings: InferenceSettings, instruction: InferenceBackend, images: ImageSource
) -> None:
    """Make the instructed Ollama container run (pull, create or restart); raises InferenceStartError."""
    image = ollama_image(settings, instruction)
    name = settings.ollama_container_name
    try:
        with PodmanClient(base_url=podman_url) as client:
            _ensure_image(client, image, images)
            existing = [c for c in client.containers.list(all=True, filters={"name": name}) if c.name == name]
            if existing and existing[0].attrs.get("ImageName", existing[0].attrs.get("Image")) != image:
                # An earlier instruction named another image (e.g. the variant changed): replace it.
                existing[0].remove(force=True)
                existing = []
            container = (
                existing[0] if existing else client.containers.create(**ollama_container_args(settings, instruction))
            )
            container.start()
    except (APIError, OSError) as exc:
        reason = exc.explanation if isinstance(exc, APIError) else str(exc)
        raise InferenceStartError(f"cannot start the Ollama container from image {image}: {reason}") from exc
    log.info(
        "ollama_container_started",
        extra={"image": image, "variant": instruction.variant, "container": name, "port": settings.ollama_port},
    )


def _ensure_image(client: PodmanClient, image: str, images: ImageSource) -> None:
    if client.images.exists(image):
        return
    log.info("ollama_image_pulling", extra={"image": image})
    if images.registries:
        try:
            images.pull(client, image)
        except ImagePullError as exc:
            raise InferenceStartError(f"cannot pull inference image {image}: {exc}") from exc
        return
    try:
        client.images.pull(image)
    except (APIError, ImageNotFound) as exc:
        raise InferenceStartError(f"cannot pull inference image {image}: {exc.explanation or exc}") from exc
