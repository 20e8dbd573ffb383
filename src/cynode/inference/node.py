"""The node's inference backend as the node manager drives it.

Owns the choice among the backends (see ``cynode.inference.settings``), what the capability
report says about them, and their lifetimes. The node manager calls ``report()`` for every
capability report, ``apply(config.inference_backend)`` once per config (an
``InferenceStartError`` there means: ack ``failed`` with its message and exit non-zero; ``images``
says where a missing Ollama image is pulled from, as for sandbox images), and
``stop()`` at shutdown; after a successful ``apply`` it hands this object to the Worker API
(``WorkerService.set_inference``), which asks ``upstream()`` where each job's sandbox proxy
forwards. Pass ``podman_url=worker.podman_url`` so an Ollama container runs on the node's podman.

When the embedded backend starts: at the first ``report()``, before registration, when the
settings allow it and no existing service answers. The node owns that server, so it is up before
the orchestrator decides anything, and the report then says ``existing_service: true, running:
true`` with the model alias: the orchestrator's decision table (step 1) sends no container
instruction. Each later report restarts it if it died. An Ollama container starts only in
``apply()``, on the orchestrator's instruction, and only when no other backend serves already (at
most one backend per node). With ``mode: disabled`` nothing starts and an instruction is refused.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from podman import PodmanClient
from podman.errors import APIError

from cynode.contracts.nodes import InferenceBackend, InferenceInfo
from cynode.inference.chat import NodeChat
from cynode.inference.embedded import EmbeddedServer
from cynode.inference.errors import InferenceStartError
from cynode.inference.framing import has_chat_template
from cynode.inference.ollama import ollama_base_url, ollama_image, start_ollama_container
from cynode.inference.settings import InferenceSettings
from cynode.inference.upstream import Upstream, available_models, client_for
from cynode.sandbox import PodmanService, PodmanUnavailableError
from cynode.sandbox.images import ImageSource

__all__ = ["InferenceStartError", "NodeInference"]

log = logging.getLogger(__name__)

_POLL_SECONDS = 0.5
_MODEL_PULL_TIMEOUT_SECONDS = 3600.0
_OLLAMA_STOP_SECONDS = 10


@dataclass
class NodeInference:
    """``state_dir`` holds the embedded server's socket and log; ``podman_url`` is the podman API
    the Ollama container is started through (the Worker API's ``WorkerService.podman_url``); without
    it the node starts a private podman service under ``state_dir`` when it needs one."""

    settings: InferenceSettings
    state_dir: Path
    podman_url: str | None = None
    _upstream: Upstream | None = field(default=None, init=False)
    _existing_service: bool = field(default=False, init=False)
    _embedded: EmbeddedServer | None = field(default=None, init=False)
    _embedded_problem: str | None = field(default=None, init=False)
    _ollama_started: bool = field(default=False, init=False)
    _private_podman: PodmanService | None = field(default=None, init=False)
    _model_pull: asyncio.Task[None] | None = field(default=None, init=False)
    _chat: NodeChat | None = field(default=None, init=False)
    _last_models: list[str] | None = field(default=None, init=False)

    @property
    def chat(self) -> NodeChat:
        """Chat completions from whichever backend serves this node (the Worker API inference route)."""
        if self._chat is None:
            self._chat = NodeChat(self.upstream, self.settings)
        return self._chat

    @property
    def _run_dir(self) -> Path:
        return self.state_dir / "inference"

    async def report(self) -> InferenceInfo:
        """What the capability report says about inference on this node right now."""
        settings = self.settings
        if settings.backend == "none":
            return InferenceInfo(supported=False, mode=settings.mode, existing_service=False, running=False)
        if settings.mode != "disabled" and not self._ollama_started:
            await self._find_own_backend()
        models = await self._served_models()
        return InferenceInfo(
            supported=True,
            mode=settings.mode,
            existing_service=self._existing_service,
            running=models is not None,
            available_models=models or [],
        )

    async def _served_models(self) -> list[str] | None:
        """What the backend serves, or None when it does not answer. A live embedded server busy
        generating can miss the probe's deadline: it keeps the models it last answered with."""
        if self._upstream is None:
            return None
        models = await available_models(self._upstream.base_url)
        embedded = self._embedded
        if models is None and embedded is not None and embedded.alive() and self._upstream.base_url == embedded.url:
            return self._last_models
        self._last_models = models
        return models

    async def _find_own_backend(self) -> None:
        """Keep a running embedded server; else use an existing service that answers (``auto``,
        ``ollama``); else start the embedded server (``auto``, ``embedded``)."""
        settings = self.settings
        if self._embedded is not None and self._embedded.alive():
            return
        if settings.backend in ("auto", "ollama"):
            url = settings.existing_service_url or ollama_base_url(settings)
            models = await available_models(url)
            if models is not None:
                self._adopt(Upstream(url, models[0] if models else None), existing=True)
                return
        if settings.backend not in ("auto", "embedded") or self._embedded_problem is not None:
            return
        try:
            await self._start_embedded()
        except InferenceStartError as exc:
            # Remembered: "embedded" fails in apply(); "auto" falls back to the orchestrator's choice.
            self._embedded_problem = str(exc)
            log.warning("embedded_inference_unavailable", extra={"reason": self._embedded_problem})

    def _adopt(self, upstream: Upstream, *, existing: bool) -> None:
        if upstream != self._upstream:
            log.info("inference_backend_in_use", extra={"url": upstream.base_url, "model": upstream.model})
        self._upstream = upstream
        # "existing_service" tells the orchestrator not to start a container: true for a service
        # found on the host and for the embedded server, which this node starts on its own.
        self._existing_service = existing

    async def _start_embedded(self) -> None:
        if self._embedded is None:
            self._embedded = EmbeddedServer(self.settings, self._run_dir)
        await self._embedded.start()
        template = await asyncio.to_thread(has_chat_template, self.settings.embedded_model_path)
        upstream = Upstream(self._embedded.url, self.settings.embedded_model_alias, chat_template=template)
        self._adopt(upstream, existing=True)

    async def apply(self, instruction: InferenceBackend | None, images: ImageSource | None = None) -> None:
        """Start (or keep) the backend the config instructs; raise InferenceStartError when it cannot.

        ``images``: the registries a missing Ollama image is pulled from (None: podman's own)."""
        settings = self.settings
        wants_container = instruction is not None and bool(instruction.enabled)
        if settings.mode == "disabled" or settings.backend == "none":
            if wants_container:
                raise InferenceStartError(
                    f"the config asks for an inference container but this node's settings refuse it "
                    f"(inference.mode={settings.mode}, inference.backend={settings.backend})"
                )
            return
        if settings.backend == "embedded" and (self._embedded is None or not self._embedded.alive()):
            self._embedded_problem = None
            await self._start_embedded()
        if instruction is None or not wants_container:
            return
        if self._existing_service:
            # At most one backend per node: the one already serving stays.
            log.warning(
                "inference_instruction_ignored",
                extra={"reason": "a backend already serves this node", "url": self.upstream_url()},
            )
            return
        await self._start_ollama(instruction, images or ImageSource())

    async def _start_ollama(self, instruction: InferenceBackend, images: ImageSource) -> None:
        started = time.monotonic()
        podman_url = await asyncio.to_thread(self._podman_url)
        await asyncio.to_thread(start_ollama_container, podman_url, self.settings, instruction, images)
        self._ollama_started = True
        base_url = ollama_base_url(self.settings)
        deadline = started + self.settings.start_timeout_seconds
        while (models := await available_models(base_url)) is None:
            if time.monotonic() > deadline:
                raise InferenceStartError(
                    f"the Ollama container from image {ollama_image(self.settings, instruction)} did not answer "
                    f"on {base_url} within {self.settings.start_timeout_seconds:g} s"
                )
            await asyncio.sleep(_POLL_SECONDS)
        model = instruction.selected_model
        self._adopt(Upstream(base_url, model or (models[0] if models else None)), existing=False)
        if model and model not in models:
            self._model_pull = asyncio.create_task(self._pull_model(base_url, model), name="ollama-model-pull")

    def _podman_url(self) -> str:
        if self.podman_url is not None:
            return self.podman_url
        if self._private_podman is None:
            self._private_podman = PodmanService(self._run_dir)
        try:
            self._private_podman.start()
        except PodmanUnavailableError as exc:
            raise InferenceStartError(f"cannot start the inference container: {exc}") from exc
        return self._private_podman.url

    async def _pull_model(self, base_url: str, model: str) -> None:
        """Have Ollama fetch the selected model; the report lists it once it is there."""
        log.info("ollama_model_pull_started", extra={"model": model})
        try:
            async with client_for(base_url, timeout=_MODEL_PULL_TIMEOUT_SECONDS) as client:
                response = await client.post("/api/pull", json={"model": model, "stream": False})
            log.info("ollama_model_pull_finished", extra={"model": model, "status": response.status_code})
        except httpx.HTTPError as exc:
            log.warning("ollama_model_pull_failed", extra={"model": model, "error": str(exc)})

    def upstream_url(self) -> str | None:
        """Base URL of the OpenAI-compatible API the sandbox proxy forwards to, once one runs."""
        return self._upstream.base_url if self._upstream is not None else None

    def upstream(self) -> Upstream | None:
        """The backend the sandbox proxy forwards to (URL and default model), once one runs."""
        return self._upstream

    async def stop(self) -> None:
        """Stop what this node started: the embedded server, the Ollama container, its podman."""
        if self._model_pull is not None:
            self._model_pull.cancel()
        if self._chat is not None:
            await self._chat.close()
        if self._embedded is not None:
            await self._embedded.stop()
        if self._ollama_started:
            await asyncio.to_thread(self._stop_ollama)
        if self._private_podman is not None:
            await asyncio.to_thread(self._private_podman.stop)
        self._upstream = None

    def _stop_ollama(self) -> None:
        name = self.settings.ollama_container_name
        try:
            with PodmanClient(base_url=self._podman_url()) as client:
                client.containers.get(name).stop(timeout=_OLLAMA_STOP_SECONDS)
        except (APIError, OSError, InferenceStartError) as exc:
            log.warning("ollama_container_stop_failed", extra={"container": name, "error": str(exc)})
        self._ollama_started = False
