"""RFC 9457 problem responses: the one error shape every CyNode API returns.

Owns the mapping from exceptions to ``application/problem+json``. Internal failures are logged
with their traceback but answered with a generic message so nothing internal leaks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException

from cynode.contracts.codec import encode
from cynode.contracts.problem import PROBLEM_CONTENT_TYPE, Problem, problem_for

log = logging.getLogger(__name__)


class ProblemError(Exception):
    """Raised by handlers to answer with a problem; ``detail`` must be safe to show a client."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        problem_type: str | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.problem_type = problem_type
        self.title = title
        self.headers = dict(headers or {})

    @classmethod
    def from_problem(cls, problem: Problem, headers: Mapping[str, str] | None = None) -> ProblemError:
        detail = problem.detail or problem.title
        return cls(problem.status, detail, problem_type=problem.type, title=problem.title, headers=headers)


def problem_body(status: int, detail: str, problem_type: str | None = None, title: str | None = None) -> bytes:
    """Encode the problem document for ``status``; type and title default to the status's own."""
    problem = problem_for(status, detail)
    if problem_type is not None:
        problem.type = problem_type
    if title is not None:
        problem.title = title
    return encode(problem)


def problem_response(
    status: int,
    detail: str,
    *,
    problem_type: str | None = None,
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response[bytes]:
    return Response(
        content=problem_body(status, detail, problem_type, title),
        status_code=status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=dict(headers or {}),
    )


def _on_problem(_: Request[Any, Any, Any], exc: ProblemError) -> Response[bytes]:
    return problem_response(exc.status, exc.detail, problem_type=exc.problem_type, title=exc.title, headers=exc.headers)


def _on_validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[bytes]:
    # Litestar's detail names the offending parameter or field but never echoes request values.
    return problem_response(HTTPStatus.BAD_REQUEST, exc.detail or "Invalid request")


def _on_http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    detail = exc.detail if status < HTTPStatus.INTERNAL_SERVER_ERROR else HTTPStatus(status).phrase
    return problem_response(status, detail, headers=exc.headers)


def _on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.error(
        "unhandled_error",
        exc_info=exc,
        extra={"method": request.method, "path": request.url.path, "error_type": type(exc).__name__},
    )
    return problem_response(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal server error")


EXCEPTION_HANDLERS: Mapping[Any, Any] = {
    ProblemError: _on_problem,
    ValidationException: _on_validation,
    HTTPException: _on_http,
    Exception: _on_unexpected,
}
