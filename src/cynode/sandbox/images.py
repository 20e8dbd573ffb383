"""Sandbox images: which ones a node may run, and fetching the ones it lacks.

Owns the allowlist decision and image pulls. Two allowlists apply: the node YAML's
``sandbox.allowed_images`` and the orchestrator's ``policy.sandbox.allowed_images``; an image must
pass both, so the stricter wins (an unset list restricts nothing). With ``require_digest_pinning``
only references pinned by ``@sha256:`` digest pass. A missing image is pulled through the podman
API, only from a registry the orchestrator's configuration names (``sandbox_registries``, in rank
order): a reference naming its registry is pulled from that one if listed, an unqualified one from
the first listed registry that has it. Pull tokens are never logged nor put in a job's output.
Refusals and failures start with their reason (``image_not_allowed``, ``image_pull_failed``).
A pull that worked is summed up as an ``ImagePull`` (registry, digest, layers, size, seconds) for
the job's result, and narrated step by step to a ``note`` callback for whoever follows the job.
The node's Ollama image is pulled by the same code (``cynode.inference.ollama``), without the
sandbox allowlists: the orchestrator chose that image itself.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msgspec
from podman.errors import APIError

from cynode.contracts.nodes import NodeConfigurationPayload
from cynode.contracts.worker import ImagePull

log = logging.getLogger(__name__)

NOT_ALLOWED = "image_not_allowed"
PULL_FAILED = "image_pull_failed"
_COPYING_BLOB = "Copying blob "
_SHORT_DIGEST = len("sha256:") + 12


class ImagePullError(RuntimeError):
    """A missing image could not be pulled; the message starts with ``image_pull_failed`` and holds no token."""


@dataclass(frozen=True)
class Registry:
    """One sandbox registry; ``http://`` URLs are pulled from without TLS (a lab or test registry)."""

    url: str
    token: str | None = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return urlsplit(self.url if "://" in self.url else f"https://{self.url}").netloc

    @property
    def shown(self) -> str:
        """The host as results and notes show it: any ``user:password@`` in the URL left out."""
        return self.host.rpartition("@")[2]

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

    def pull(self, client: Any, image: str, note: Callable[[str], None] = lambda _: None) -> ImagePull:
        """Pull the missing ``image`` and say how it went; raises ``ImagePullError`` when it cannot.

        ``note`` receives one line per step a user following the job should see (which registry
        is tried, each layer podman starts copying, the summary), free of credentials.
        """
        candidates = self._candidates(image)
        if not candidates:
            named = _registry_of(image) or "an unqualified reference"
            raise ImagePullError(
                f"{PULL_FAILED}: image {image} is not present on this node and {named} is not among the "
                "orchestrator's sandbox registries"
            )
        started = time.monotonic()
        failures: list[str] = []
        for registry, reference in candidates:
            note(f"pulling image {image} from {registry.shown}")
            problem, layers = _pull_one(
                client, registry, reference, lambda n, blob: note(f"pulling image {image}: copying layer {n} ({blob})")
            )
            if problem is None:
                if reference != image:
                    client.images.get(reference).tag(*_repository_and_tag(image))
                pulled = _summary(client, image, reference, registry, layers, time.monotonic() - started)
                note(_describe(pulled))
                log.info("image_pulled", extra=msgspec.structs.asdict(pulled))
                return pulled
            failures.append(f"{registry.shown}: {problem}")
        log.warning("image_pull_failed", extra={"image": image, "failures": failures})
        raise ImagePullError(f"{PULL_FAILED}: image {image} could not be pulled ({'; '.join(failures)})")


def _summary(client: Any, image: str, reference: str, registry: Registry, layers: int, seconds: float) -> ImagePull:
    attrs = client.images.get(reference).attrs
    size = attrs.get("Size")
    return ImagePull(
        image=image,
        registry=registry.shown,
        digest=_pulled_digest(reference, attrs.get("RepoDigests") or []),
        layers=layers,
        size_bytes=size if isinstance(size, int) else None,
        seconds=round(seconds, 3),
    )


def _pulled_digest(reference: str, repo_digests: list[str]) -> str | None:
    """The manifest digest ``reference`` resolved to. Podman lists every digest its stored image
    has under each of its names, so when the image was already stored under another manifest the
    digest pulled cannot be told apart, and none is claimed."""
    pinned = reference.partition("@")[2]
    if pinned:
        return pinned
    repository = _repository_and_tag(reference)[0]
    digests = {digest for name, _, digest in (d.partition("@") for d in repo_digests) if name == repository}
    return digests.pop() if len(digests) == 1 else None


def _describe(pulled: ImagePull) -> str:
    layers = f"{pulled.layers} layer{'' if pulled.layers == 1 else 's'}"
    size = f", {pulled.size_bytes / 1e6:.1f} MB" if pulled.size_bytes is not None else ""
    digest = f", digest {pulled.digest}" if pulled.digest else ""
    return f"pulled image {pulled.image} from {pulled.registry} in {pulled.seconds:.1f} s ({layers}{size}{digest})"


def _repository_and_tag(image: str) -> tuple[str, str]:
    repository, colon, tag = image.rpartition(":")
    if not colon or "/" in tag:
        return image, "latest"
    return repository, tag


def _pull_one(
    client: Any, registry: Registry, reference: str, copying: Callable[[int, str], None]
) -> tuple[str | None, int]:
    """Pull ``reference`` from ``registry``: why it failed (None when it worked) and the layers copied.
    ``copying`` hears of each layer (its number and blob digest) as podman starts copying it."""
    auth = {"username": "cynode", "password": registry.token} if registry.token else None
    layers = 0
    try:
        # Streamed: podman reports a failed pull as an error line in a 200 response, not as a status.
        progress = client.images.pull(
            reference, auth_config=auth, tls_verify=registry.tls_verify, stream=True, decode=True
        )
        errors = []
        for line in progress:
            if not isinstance(line, dict):
                continue
            if line.get("error"):
                errors.append(str(line["error"]))
            # podman 4.x reports each layer as a "Copying blob sha256:<digest>" line, without byte counts.
            said = str(line.get("stream", ""))
            if said.startswith(_COPYING_BLOB):
                layers += 1
                copying(layers, said.removeprefix(_COPYING_BLOB).strip()[:_SHORT_DIGEST])
        detail = "; ".join(errors) if errors else None
        if detail is None and not client.images.exists(reference):
            detail = "the registry answered but the image did not arrive"
    except (APIError, OSError) as exc:
        detail = getattr(exc, "explanation", None) or str(exc)
    if detail is None:
        return None, layers
    # A registry may echo what it was sent; the token must not reach a job result or a log.
    return (detail.replace(registry.token, "<token>") if registry.token else detail), layers
