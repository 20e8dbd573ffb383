"""Reading JSON request bodies into contracts and writing contract responses, for every API.

Owns the request rules all handlers share: a body must be declared ``application/json`` (415
otherwise) and must decode into its contract (400 otherwise, with the codec's path-bearing message;
an unsupported ``version`` gets its own problem type and title).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Final, TypeVar

import msgspec
from litestar import Request, Response
from litestar.background_tasks import BackgroundTask

from cynode.contracts.codec import PayloadError, decode, encode
from cynode.contracts.problem import problem_from_payload_error
from cynode.http.problems import ProblemError

JSON_MEDIA_TYPE: Final = "application/json"

T = TypeVar("T")


def decode_payload(body: bytes, payload_type: type[T]) -> T:
    """``body`` decoded as ``payload_type``; a 400 problem when it does not fit."""
    try:
        return decode(body, payload_type)
    except PayloadError as exc:
        raise ProblemError.from_problem(problem_from_payload_error(exc)) from None


async def json_body(request: Request[Any, Any, Any]) -> bytes:
    """The raw body of a request that declares itself JSON; a 415 problem otherwise."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        raise ProblemError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"Content-Type must be {JSON_MEDIA_TYPE}")
    return await request.body()


async def read_json(request: Request[Any, Any, Any], payload_type: type[T], *, empty: T | None = None) -> T:
    """The request's JSON body as ``payload_type``; ``empty`` stands in for a request with no body at all."""
    if empty is not None and not await request.body():
        return empty
    return decode_payload(await json_body(request), payload_type)


def json_response(
    payload: msgspec.Struct, status: int = HTTPStatus.OK, *, background: BackgroundTask | None = None
) -> Response[bytes]:
    return Response(encode(payload), status_code=status, media_type=JSON_MEDIA_TYPE, background=background)


def no_content() -> Response[None]:
    return Response(content=None, status_code=HTTPStatus.NO_CONTENT)
