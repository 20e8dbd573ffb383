"""Chat failures and the OpenAI error shape they are answered with on the OpenAI routes.

``GET /v1/models`` and ``POST /v1/chat/completions`` answer ``{"error": {message, type, param,
code}}``, never a problem document (CONTRACT.md section 8). Statuses: 400 bad request, 401 no or bad
token, 404 unknown model, 408 client went away, 502 inference failed, 503 no node or overloaded,
504 wait cap reached. Messages are safe to show: never a token, a URL with credentials, or content.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Final

from litestar import Response

from cynode.contracts.codec import encode
from cynode.contracts.openai import ErrorBody, OpenAIError
from cynode.http.limits import TOO_LARGE_DETAIL
from cynode.http.payloads import JSON_MEDIA_TYPE
from cynode.http.problems import ProblemError
from cynode.inference.errors import InferenceCallError

ERROR_TYPE: Final = "cynodeai_error"
OPENAI_PATHS: Final = frozenset({"/v1/models", "/v1/chat/completions"})
"""The gateway routes that answer errors in the OpenAI shape."""
_TRANSIENT: Final = frozenset({HTTPStatus.BAD_GATEWAY, HTTPStatus.SERVICE_UNAVAILABLE})
_CODES: Final = {
    HTTPStatus.BAD_REQUEST: "invalid_request",
    HTTPStatus.UNAUTHORIZED: "invalid_api_key",
    HTTPStatus.NOT_FOUND: "model_not_found",
    HTTPStatus.REQUEST_TIMEOUT: "cynodeai_request_canceled",
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "request_too_large",
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE: "invalid_request",
    HTTPStatus.BAD_GATEWAY: "cynodeai_inference_failed",
    HTTPStatus.SERVICE_UNAVAILABLE: "cynodeai_unavailable",
    HTTPStatus.GATEWAY_TIMEOUT: "cynodeai_completion_timeout",
}


class ChatError(Exception):
    """A chat request that gets no completion; ``status`` and ``code`` go to the client as they are."""

    def __init__(
        self, status: int, message: str, code: str | None = None, *, param: str | None = None, transient: bool = False
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code or _CODES.get(HTTPStatus(status), "cynodeai_error")
        self.param = param
        self.transient = transient

    @classmethod
    def from_inference(cls, exc: InferenceCallError) -> ChatError:
        return cls(exc.status, exc.message, exc.code, transient=exc.status in _TRANSIENT)

    @classmethod
    def from_problem(cls, exc: ProblemError) -> ChatError:
        """A shared check (bearer token, body decoding) that answered with a problem elsewhere."""
        return cls(exc.status, exc.detail)

    def body(self) -> OpenAIError:
        return OpenAIError(error=ErrorBody(message=self.message, type=ERROR_TYPE, param=self.param, code=self.code))

    def response(self) -> Response[bytes]:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == HTTPStatus.UNAUTHORIZED else {}
        return Response(encode(self.body()), status_code=self.status, media_type=JSON_MEDIA_TYPE, headers=headers)


def is_transient_status(status: int) -> bool:
    return status in _TRANSIENT


def openai_too_large(path: str) -> tuple[str, bytes] | None:
    """The 413 of an OpenAI-compatible route, in its error shape; None for every other path."""
    if path not in OPENAI_PATHS:
        return None
    return JSON_MEDIA_TYPE, encode(ChatError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, TOO_LARGE_DETAIL).body())
