"""Sandbox images: which ones a node may run, and fetching the ones it lacks.

Owns the allowlist decision and image pulls. Two allowlists apply: the node YAML's
``sandbox.allowed_images`` and the orchestrator's ``policy.sandbox.allowed_images``; an image must
pass both, so the stricter wins (an unset list restricts nothing). With ``require_digest_pinning``
only references pinned by ``@sha256:`` digest pass. A missing image is pulled through the podman
API, only from a registry the orchestrator's configuration names (``sandbox_registries``, in rank
order): a reference naming its registry is pulled from that one if listed, an unqualified one from
the first listed registry that has it. Pull tokens are never logged nor put in a job's output.
Refusals and failures start with their reason (``image_not_allowed``, ``image_pull_failed``).
The node's Ollama image is pulled by the same code (``cynode.inference.ollama``), without the
sandbox allowlists: the orchestrator chose that image itself.
"""

from __future__ import annotations

import fnmatch
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from podman.errors import APIError

from cynode.contracts.nodes import NodeConfigurationPayload

log = logging.getLogger(__name__)

NOT_ALLOWED = "image_not_allowed"
PULL_FAILED = "image_pull_failed"


@dataclass(frozen=True)
class Registry:
    """One sandbox registry; ``http://`` URLs are pulled from without TLS (a lab or test registry)."""

    url: str
    token: str | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return urlsplit(self.url if "://" in self.url else f"https://{self.url}").netloc

    @property
    def tls_verify(self) -> bool:
        return not self.url.startswith("http://")


def _registry_of(image: str) -> str | None:
    """The registry host a reference names, or None for an unqualified one (``alpine:latest``)."""
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


@dataclass(frozen=True)
class ImageSource:
    node_allowed: tuple[str, ...] = ()
    """``sandbox.allowed_images`` of the node YAML (references or fnmatch patterns); empty: any."""
    orchestrator_allowed: tuple[str, ...] | None = None
    """``policy.sandbox.allowed_images`` from the orchestrator; None: no orchestrator allowlist."""
    registries: tuple[Registry, ...] = ()
    require_digest: bool = False

    @classmethod
    def from_config(cls, node_allowed: tuple[str, ...], config: NodeConfigurationPayload) -> ImageSource:
        """The node's own allowlist joined with what the orchestrator's configuration says."""
        sandbox_policy = config.policy.sandbox if config.policy is not None else None
        allowed = sandbox_policy.allowed_images if sandbox_policy is not None else None
        return cls(
            node_allowed=node_allowed,
            orchestrator_allowed=tuple(allowed) if allowed is not None else None,
            registries=tuple(Registry(r.registry_url, r.pull_token) for r in config.sandbox_registries),
            require_digest=bool(config.require_digest_pinning),
        )

    def refusal(self, image: str) -> str | None:
        """Why ``image`` may not run here (starting with ``image_not_allowed``), or None."""
        if self.require_digest and "@sha256:" not in image:
            return f"{NOT_ALLOWED}: image {image} is not allowed: it is not pinned by digest, which policy requires"
        for patterns, whose in ((self.node_allowed, "node's"), (self.orchestrator_allowed or (), "orchestrator's")):
            if patterns and not any(fnmatch.fnmatchcase(image, pattern) for pattern in patterns):
                return f"{NOT_ALLOWED}: image {image} is not allowed by the {whose} sandbox image allowlist"
        return None

    def _candidates(self, image: str) -> list[tuple[Registry, str]]:
        named = _registry_of(image)
        if named is not None:
            return [(registry, image) for registry in self.registries if registry.host == named]
        return [(registry, f"{registry.host}/{image}") for registry in self.registries]

    def pull(self, client: Any, image: str) -> str | None:
        """Pull the missing ``image``; None once present, else why not (starting with ``image_pull_failed``)."""
        candidates = self._candidates(image)
        if not candidates:
            named = _registry_of(image) or "an unqualified reference"
            return (
                f"{PULL_FAILED}: image {image} is not present on this node and {named} is not among the "
                "orchestrator's sandbox registries"
            )
        failures: list[str] = []
        for registry, reference in candidates:
            problem = _pull_one(client, registry, reference)
            if problem is None:
                if reference != image:
                    client.images.get(reference).tag(*_repository_and_tag(image))
                log.info("image_pulled", extra={"image": image, "registry": registry.host})
                return None
            failures.append(f"{registry.host}: {problem}")
        log.warning("image_pull_failed", extra={"image": image, "failures": failures})
        return f"{PULL_FAILED}: image {image} could not be pulled ({'; '.join(failures)})"


def _repository_and_tag(image: str) -> tuple[str, str]:
    repository, colon, tag = image.rpartition(":")
    if not colon or "/" in tag:
        return image, "latest"
    return repository, tag


def _pull_one(client: Any, registry: Registry, reference: str) -> str | None:
    auth = {"username": "cynode", "password": registry.token} if registry.token else None
    try:
        # Streamed: podman reports a failed pull as an error line in a 200 response, not as a status.
        progress = client.images.pull(
            reference, auth_config=auth, tls_verify=registry.tls_verify, stream=True, decode=True
        )
        errors = [str(line["error"]) for line in progress if isinstance(line, dict) and line.get("error")]
        detail = "; ".join(errors) if errors else None
        if detail is None and not client.images.exists(reference):
            detail = "the registry answered but the image did not arrive"
    except (APIError, OSError) as exc:
        detail = getattr(exc, "explanation", None) or str(exc)
    if detail is None:
        return None
    # A registry may echo what it was sent; the token must not reach a job result or a log.
    return detail.replace(registry.token, "<token>") if registry.token else detail
