"""The per-job inference proxy: how a network-less sandbox reaches the node's model.

One ``InferenceProxy`` serves one job on a Unix socket in a host directory that the executor
bind-mounts into the container. It forwards only the OpenAI-compatible inference routes
(``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions``) to the backend's
base URL; every other path is 404. It answers ``GET /healthz`` itself. Bodies over the size cap are
refused with 413 before anything is forwarded, each request has an overall deadline, a request
without a ``model`` gets the backend's model, and only content negotiation headers travel in either
direction (no credentials, no cookies). Responses, streamed ones included, are relayed as they come.
A chat for a model without a chat template is not relayed but answered through the node's framing
(``cynode.inference.chat``), so a prompt job gets text, or a 502 problem, never a blank answer.

The proxy runs in the worker's event loop on uvicorn's protocol machinery, started without uvicorn's
main loop (no tick to wait for, no signal handlers touched) and stopped by closing its listener
and connections at once: it is stopped after the job's container is gone, so no client is left to
wait for, and uvicorn's graceful shutdown would add a fixed 100 ms to every job.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import msgspec
import uvicorn

from cynode.contracts.codec import PayloadError, decode, encode
from cynode.contracts.openai import ChatCompletionRequest
from cynode.contracts.problem import PROBLEM_CONTENT_TYPE, problem_for
from cynode.inference.chat import NodeChat
from cynode.inference.errors import InferenceCallError
from cynode.inference.settings import InferenceSettings
from cynode.inference.sse import MEDIA_TYPE, sse_stream, started
from cynode.inference.upstream import Upstream, client_for

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 10 * 1024 * 1024
REQUEST_TIMEOUT_SECONDS = 120.0
HEALTH_PATH = "/healthz"
CHAT_PATH = "/v1/chat/completions"
ROUTES: dict[str, str] = {
    "/v1/models": "GET",
    CHAT_PATH: "POST",
    "/v1/completions": "POST",
}
_FORWARDED_REQUEST_HEADERS = frozenset({b"content-type", b"accept"})
_FORWARDED_RESPONSE_HEADERS = frozenset({"content-type", "cache-control"})
_SSE_CONTENT_TYPE = (b"content-type", MEDIA_TYPE.encode())

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _BodyTooLargeError(Exception):
    pass


def bind_unix_socket(path: Path) -> socket.socket:
    """A listening socket at ``path``, replacing a stale one.

    Bound through ``/proc/self/fd`` of the parent directory, so a host path longer than a
    ``sockaddr_un`` can hold (deep mount roots) still works; the container sees a short path.
    """
    path.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(f"/proc/self/fd/{directory}/{path.name}")
        sock.listen(64)
    except OSError:
        sock.close()
        raise
    finally:
        os.close(directory)
    sock.setblocking(False)
    return sock


async def _read_body(receive: Receive, limit: int) -> bytes:
    body = bytearray()
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > limit:
            raise _BodyTooLargeError
        if not message.get("more_body", False):
            return bytes(body)


def _with_default_model(body: bytes, model: str | None) -> bytes:
    """The body with ``model`` filled in when it is a JSON object that names none."""
    if model is None:
        return body
    try:
        payload = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return body  # The backend answers malformed JSON with its own error.
    if not isinstance(payload, dict) or payload.get("model"):
        return body
    payload["model"] = model
    return msgspec.json.encode(payload)


async def _respond(send: Send, status: int, body: bytes, content_type: str) -> None:
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _problem(send: Send, status: int, detail: str) -> None:
    await _respond(send, status, msgspec.json.encode(problem_for(status, detail)), PROBLEM_CONTENT_TYPE)


class InferenceProxy:
    """ASGI app and server of one job's proxy; ``start`` binds ``socket_path``, ``stop`` removes it."""

    def __init__(
        self,
        socket_path: Path,
        upstream: Upstream,
        *,
        job_id: str,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        timeout_seconds: float = REQUEST_TIMEOUT_SECONDS,
    ) -> None:
        self.socket_path = socket_path
        self.upstream = upstream
        self.job_id = job_id
        self.max_request_bytes = max_request_bytes
        self.timeout_seconds = timeout_seconds
        self._client: httpx.AsyncClient | None = None
        self._chat: NodeChat | None = None
        self._server: uvicorn.Server | None = None
        self._socket: socket.socket | None = None

    async def start(self) -> None:
        self._socket = bind_unix_socket(self.socket_path)
        self._client = client_for(self.upstream.base_url, timeout=self.timeout_seconds)
        self._chat = NodeChat(lambda: self.upstream, InferenceSettings(chat_timeout_seconds=self.timeout_seconds))
        config = uvicorn.Config(
            self,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            date_header=False,
        )
        config.load()
        self._server = uvicorn.Server(config)
        self._server.lifespan = config.lifespan_class(config)
        await self._server.startup(sockets=[self._socket])
        log.info("inference_proxy_started", extra={"job_id": self.job_id, "socket": str(self.socket_path)})

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            for listener in server.servers:
                listener.close()
            for connection in list(server.server_state.connections):
                connection.shutdown()
            for task in list(server.server_state.tasks):
                task.cancel()
            for listener in server.servers:
                await listener.wait_closed()
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._chat is not None:
            await self._chat.close()
            self._chat = None
        self.socket_path.unlink(missing_ok=True)
        log.info("inference_proxy_stopped", extra={"job_id": self.job_id})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = time.monotonic()
        status = await self._handle(scope, receive, send)
        log.info(
            "inference_proxy_request",
            extra={
                "job_id": self.job_id,
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "ms": round((time.monotonic() - started) * 1000, 1),
            },
        )

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> int:
        path, method = scope["path"], scope["method"]
        if path == HEALTH_PATH and method == "GET":
            await _respond(send, HTTPStatus.OK, b"ok", "text/plain; charset=utf-8")
            return HTTPStatus.OK
        if path not in ROUTES:
            await _problem(send, HTTPStatus.NOT_FOUND, f"{path} is not an inference route of this proxy")
            return HTTPStatus.NOT_FOUND
        if method != ROUTES[path]:
            await _problem(send, HTTPStatus.METHOD_NOT_ALLOWED, f"{path} accepts {ROUTES[path]} only")
            return HTTPStatus.METHOD_NOT_ALLOWED
        headers = {name: value for name, value in scope["headers"] if name in _FORWARDED_REQUEST_HEADERS}
        too_large = f"request body exceeds {self.max_request_bytes} bytes"
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if declared.isdigit() and int(declared) > self.max_request_bytes:
            await _problem(send, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, too_large)
            return HTTPStatus.REQUEST_ENTITY_TOO_LARGE
        try:
            body = await _read_body(receive, self.max_request_bytes)
        except _BodyTooLargeError:
            await _problem(send, HTTPStatus.REQUEST_ENTITY_TOO_LARGE, too_large)
            return HTTPStatus.REQUEST_ENTITY_TOO_LARGE
        if path == CHAT_PATH and not self.upstream.chat_template:
            return await self._framed_chat(body, send)
        if method == "POST":
            body = _with_default_model(body, self.upstream.model)
        return await self._forward(method, path, headers, body, send)

    async def _framed_chat(self, body: bytes, send: Send) -> int:
        """A chat for a model without a chat template, answered through the node's framing (and
        never as a blank success: an empty answer is a 502 problem)."""
        assert self._chat is not None
        try:
            request = decode(body, ChatCompletionRequest)
        except PayloadError as exc:
            await _problem(send, HTTPStatus.BAD_REQUEST, str(exc))
            return HTTPStatus.BAD_REQUEST
        try:
            if not request.stream:
                completion = await self._chat.complete(request)
                await _respond(send, HTTPStatus.OK, encode(completion), "application/json")
                return HTTPStatus.OK
            chunks = await started(self._chat.stream(request))
        except InferenceCallError as exc:
            await _problem(send, exc.status, exc.message)
            return exc.status
        await send({"type": "http.response.start", "status": HTTPStatus.OK, "headers": [_SSE_CONTENT_TYPE]})
        events = sse_stream(
            chunks, InferenceCallError, lambda exc: msgspec.json.encode(problem_for(exc.status, exc.message))
        )
        async for event in events:
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return HTTPStatus.OK

    async def _forward(self, method: str, path: str, headers: dict[bytes, bytes], body: bytes, send: Send) -> int:
        assert self._client is not None
        started_response = False
        try:
            async with asyncio.timeout(self.timeout_seconds):
                request = self._client.build_request(method, path, headers=headers, content=body or None)
                response = await self._client.send(request, stream=True)
                try:
                    relayed = [
                        (name.encode(), value.encode())
                        for name, value in response.headers.items()
                        if name.lower() in _FORWARDED_RESPONSE_HEADERS
                    ]
                    await send({"type": "http.response.start", "status": response.status_code, "headers": relayed})
                    started_response = True
                    async for chunk in response.aiter_raw():
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    await send({"type": "http.response.body", "body": b""})
                finally:
                    await response.aclose()
                return response.status_code
        except TimeoutError:
            if started_response:
                raise  # Headers are out: only dropping the connection can tell the client.
            await _problem(
                send, HTTPStatus.GATEWAY_TIMEOUT, f"the inference backend took over {self.timeout_seconds:g} s"
            )
            return HTTPStatus.GATEWAY_TIMEOUT
        except httpx.HTTPError as exc:
            if started_response:
                raise
            log.warning("inference_proxy_upstream_failed", extra={"job_id": self.job_id, "error": str(exc)})
            await _problem(send, HTTPStatus.BAD_GATEWAY, "the inference backend is not reachable")
            return HTTPStatus.BAD_GATEWAY
