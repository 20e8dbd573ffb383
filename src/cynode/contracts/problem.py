"""RFC 9457 problem details: the error body of every CyNode JSON API."""

from http import HTTPStatus

import msgspec

from cynode.contracts.codec import PayloadError, UnsupportedVersionError, decode

__all__ = [
    "PROBLEM_CONTENT_TYPE",
    "TYPE_AUTHENTICATION",
    "TYPE_AUTHORIZATION",
    "TYPE_CONFLICT",
    "TYPE_INTERNAL",
    "TYPE_NOT_FOUND",
    "TYPE_RATE_LIMIT",
    "TYPE_UNAVAILABLE",
    "TYPE_UNSUPPORTED_PAYLOAD_VERSION",
    "TYPE_VALIDATION",
    "Problem",
    "problem_detail",
    "problem_for",
    "problem_from_payload_error",
]

PROBLEM_CONTENT_TYPE = "application/problem+json"

TYPE_VALIDATION = "urn:cynodeai:error:validation"
TYPE_AUTHENTICATION = "urn:cynodeai:error:authentication"
TYPE_AUTHORIZATION = "urn:cynodeai:error:authorization"
TYPE_NOT_FOUND = "urn:cynodeai:error:not_found"
TYPE_CONFLICT = "https://cynode.ai/specs/conflict"
TYPE_RATE_LIMIT = "urn:cynodeai:error:rate_limit"
TYPE_INTERNAL = "urn:cynodeai:error:internal"
TYPE_UNAVAILABLE = "urn:cynodeai:error:unavailable"
TYPE_UNSUPPORTED_PAYLOAD_VERSION = "https://cynode.ai/problems/unsupported-payload-version"

# Titles are spelled out rather than taken from HTTPStatus so they stay the same across Python
# releases (3.13 renamed the 413 phrase).
_TYPE_AND_TITLE_BY_STATUS: dict[int, tuple[str, str]] = {
    400: (TYPE_VALIDATION, "Bad Request"),
    401: (TYPE_AUTHENTICATION, "Unauthorized"),
    403: (TYPE_AUTHORIZATION, "Forbidden"),
    404: (TYPE_NOT_FOUND, "Not Found"),
    409: (TYPE_CONFLICT, "Conflict"),
    413: (TYPE_VALIDATION, "Request Entity Too Large"),
    429: (TYPE_RATE_LIMIT, "Too Many Requests"),
    500: (TYPE_INTERNAL, "Internal Server Error"),
    503: (TYPE_UNAVAILABLE, "Service Unavailable"),
}

# RFC 9457 section 4.2.1: a problem with no more specific type uses about:blank and the status phrase.
_GENERIC_TYPE = "about:blank"


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Error body sent as application/problem+json; `detail` is for humans and never holds secrets."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


def problem_for(status: int, detail: str | None = None) -> Problem:
    """The problem for an HTTP error status, with the project's type URN and title for that status."""
    if not 400 <= status <= 599:
        raise ValueError(f"problem details need a 4xx or 5xx status, got {status}")
    type_, title = _TYPE_AND_TITLE_BY_STATUS.get(status, (_GENERIC_TYPE, _status_phrase(status)))
    return Problem(type=type_, title=title, status=status, detail=detail)


def _status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        # Non-standard codes (e.g. a proxy's 499) still need a title; error handlers must not raise.
        return "Client Error" if status < 500 else "Server Error"


def problem_from_payload_error(error: PayloadError) -> Problem:
    """The 400 problem for a body the codec rejected; an unsupported version gets its own type."""
    if isinstance(error, UnsupportedVersionError):
        return Problem(
            type=TYPE_UNSUPPORTED_PAYLOAD_VERSION,
            title="Unsupported payload version",
            status=400,
            detail=str(error),
        )
    return problem_for(400, f"Invalid request body: {error}")


def problem_detail(body: bytes) -> str | None:
    """What a problem document says went wrong (its detail, else its title); None if it is none."""
    try:
        problem = decode(body, Problem)
    except PayloadError:
        return None
    return problem.detail or problem.title
