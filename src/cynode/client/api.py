"""A small typed client for the gateway's user API (``/v1/auth/*``, ``/v1/users/me``, ``/v1/tasks``).

Every response is decoded into the wire Structs of :mod:`cynode.contracts`; every failure (a
problem document, an unreachable gateway, a body that does not fit) becomes a :class:`ClientError`
carrying the status and a human detail. A 401 on a signed-in call is answered by refreshing the
access token once and retrying; if that fails too the caller gets :class:`LoginRequired`.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import msgspec

from cynode.client.credentials import Credentials
from cynode.contracts.codec import PayloadError, decode, encode
from cynode.contracts.identity import LoginRequest, LogoutRequest, RefreshRequest, TokenPair, UserResponse
from cynode.contracts.problem import problem_detail
from cynode.contracts.tasks import (
    CancelTaskResponse,
    CreateTaskRequest,
    LogStream,
    TaskListResponse,
    TaskLogsResponse,
    TaskResponse,
    TaskResultResponse,
    TaskStatus,
)

__all__ = ["ClientError", "GatewayClient", "LoginRequired"]

T = TypeVar("T")

_UNAUTHORIZED = 401


class ClientError(Exception):
    """A user API call that did not succeed; `status` is None when no HTTP answer arrived."""

    def __init__(self, status: int | None, detail: str) -> None:
        super().__init__(detail if status is None else f"{detail} (HTTP {status})")
        self.status = status
        self.detail = detail


class LoginRequired(ClientError):
    """No session, or one the gateway no longer accepts even after a refresh."""

    def __init__(self, detail: str = "not logged in") -> None:
        super().__init__(_UNAUTHORIZED, f"{detail}; run `cynode login`")


def _problem_detail(response: httpx.Response) -> str:
    return problem_detail(response.content) or response.reason_phrase or "request failed"


class GatewayClient:
    """User API calls against one gateway; `on_tokens` learns of every new token pair (to persist it)."""

    def __init__(
        self,
        gateway_url: str,
        credentials: Credentials | None = None,
        *,
        on_tokens: Callable[[Credentials], None] | None = None,
        timeout: float = 30,
    ) -> None:
        self.gateway_url = gateway_url.rstrip("/")
        self.credentials = credentials
        self._on_tokens = on_tokens
        try:
            # A request with a body goes out as two writes; without TCP_NODELAY the second one waits
            # for the gateway's delayed ACK (~40 ms) on every kept-alive request.
            transport = httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
            self._http = httpx.Client(base_url=self.gateway_url, timeout=timeout, transport=transport)
        except httpx.InvalidURL as exc:
            raise ClientError(None, f"invalid gateway URL {gateway_url!r}: {exc}") from exc

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._http.close()

    # -- authentication ---------------------------------------------------------------------------

    def login(self, handle: str, password: str) -> Credentials:
        response = self._send("POST", "/v1/auth/login", body=LoginRequest(handle=handle, password=password))
        return self._adopt(self._decoded(response, TokenPair))

    def refresh(self) -> Credentials:
        """Trade the refresh token for a new pair; LoginRequired if the gateway refuses it."""
        if self.credentials is None:
            raise LoginRequired()
        request = RefreshRequest(refresh_token=self.credentials.refresh_token)
        response = self._send("POST", "/v1/auth/refresh", body=request)
        if response.status_code == _UNAUTHORIZED:
            raise LoginRequired(f"session expired: {_problem_detail(response)}")
        return self._adopt(self._decoded(response, TokenPair))

    def logout(self) -> None:
        """End this session on the gateway (access and refresh token alike)."""
        if self.credentials is None:
            raise LoginRequired()
        request = LogoutRequest(refresh_token=self.credentials.refresh_token)
        self._checked(self._signed_in("POST", "/v1/auth/logout", body=request))

    def me(self) -> UserResponse:
        return self._decoded(self._signed_in("GET", "/v1/users/me"), UserResponse)

    # -- tasks ------------------------------------------------------------------------------------

    def create_task(self, request: CreateTaskRequest) -> TaskResponse:
        return self._decoded(self._signed_in("POST", "/v1/tasks", body=request), TaskResponse)

    def list_tasks(
        self, *, status: TaskStatus | None = None, limit: int | None = None, cursor: str | None = None
    ) -> TaskListResponse:
        params = {name: str(value) for name, value in (("status", status), ("limit", limit), ("cursor", cursor))
                  if value is not None}  # fmt: skip
        return self._decoded(self._signed_in("GET", "/v1/tasks", params=params), TaskListResponse)

    def get_task(self, task_ref: str) -> TaskResponse:
        """A task by id or by name."""
        return self._decoded(self._signed_in("GET", _task_path(task_ref)), TaskResponse)

    def result(self, task_ref: str, *, wait: float = 0) -> TaskResultResponse:
        """The task's result; with ``wait`` the gateway holds the answer until the task ends (at most that long)."""
        params = {"wait": f"{wait:.3f}"} if wait > 0 else None
        response = self._signed_in("GET", _task_path(task_ref, "result"), params=params)
        return self._decoded(response, TaskResultResponse)

    def follow_logs(self, task_ref: str, stream: LogStream = "all") -> Iterator[dict[str, Any]]:
        """The events of ``/logs?follow=1`` as they arrive (see :mod:`cynode.tasks.waiting`)."""
        self.get_task(task_ref)  # refreshes an expired token and reports an unknown task before streaming
        assert self.credentials is not None
        headers = {"authorization": f"Bearer {self.credentials.access_token}"}
        params = {"follow": "1", "stream": stream}
        try:
            with self._http.stream("GET", _task_path(task_ref, "logs"), params=params, headers=headers,
                                   timeout=httpx.Timeout(30, read=None)) as response:  # fmt: skip
                if response.is_error:
                    response.read()
                    raise ClientError(response.status_code, _problem_detail(response))
                for line in response.iter_lines():
                    if line:
                        yield msgspec.json.decode(line)
        except (httpx.HTTPError, msgspec.DecodeError) as exc:
            raise ClientError(None, f"log stream from {self.gateway_url} broke off: {exc}") from exc

    def logs(self, task_ref: str, stream: LogStream = "all") -> TaskLogsResponse:
        response = self._signed_in("GET", _task_path(task_ref, "logs"), params={"stream": stream})
        return self._decoded(response, TaskLogsResponse)

    def cancel(self, task_ref: str) -> CancelTaskResponse:
        return self._decoded(self._signed_in("POST", _task_path(task_ref, "cancel")), CancelTaskResponse)

    # -- plumbing ---------------------------------------------------------------------------------

    def _adopt(self, tokens: TokenPair) -> Credentials:
        self.credentials = Credentials(
            gateway_url=self.gateway_url, access_token=tokens.access_token, refresh_token=tokens.refresh_token
        )
        if self._on_tokens is not None:
            self._on_tokens(self.credentials)
        return self.credentials

    def _signed_in(self, method: str, path: str, *, body: Any = None, params: dict[str, str] | None = None
                   ) -> httpx.Response:  # fmt: skip
        """Send with the access token; on a 401 refresh once and retry, so an expired token goes unnoticed."""
        if self.credentials is None:
            raise LoginRequired()
        response = self._send(method, path, body=body, params=params, token=self.credentials.access_token)
        if response.status_code != _UNAUTHORIZED:
            return response
        retried = self._send(method, path, body=body, params=params, token=self.refresh().access_token)
        if retried.status_code == _UNAUTHORIZED:
            raise LoginRequired(_problem_detail(retried))
        return retried

    def _send(self, method: str, path: str, *, body: Any = None, params: dict[str, str] | None = None,
              token: str | None = None) -> httpx.Response:  # fmt: skip
        headers = {"authorization": f"Bearer {token}"} if token else {}
        if body is not None:
            headers["content-type"] = "application/json"
        try:
            return self._http.request(
                method, path, content=None if body is None else encode(body), params=params, headers=headers
            )
        except httpx.HTTPError as exc:
            raise ClientError(None, f"cannot reach the gateway at {self.gateway_url}: {exc}") from exc

    @staticmethod
    def _checked(response: httpx.Response) -> httpx.Response:
        if response.is_error:
            raise ClientError(response.status_code, _problem_detail(response))
        return response

    def _decoded(self, response: httpx.Response, type_: type[T]) -> T:
        try:
            return decode(self._checked(response).content, type_)
        except PayloadError as exc:
            raise ClientError(response.status_code, f"unexpected answer from the gateway: {exc}") from exc


def _task_path(task_ref: str, sub_resource: str | None = None) -> str:
    path = f"/v1/tasks/{quote(task_ref, safe='')}"
    return f"{path}/{sub_resource}" if sub_resource else path
