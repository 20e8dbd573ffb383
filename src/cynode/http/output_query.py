"""Query parameters of the live job output routes (Worker API and control plane): which stream,
and from which byte offset. Bad values are 400 problems."""

from __future__ import annotations

from http import HTTPStatus

from cynode.contracts.job_output import OUTPUT_STREAMS, OutputStream
from cynode.http.problems import ProblemError


def output_stream(value: str | None) -> OutputStream:
    if value not in OUTPUT_STREAMS:
        raise ProblemError(HTTPStatus.BAD_REQUEST, "stream must be stdout or stderr")
    return value


def byte_offset(value: str | None) -> int:
    """``after``: 0 when absent, else a non-negative integer (its upper bound is the caller's to check)."""
    if value is None:
        return 0
    if not (value.isascii() and value.isdigit()):
        raise ProblemError(HTTPStatus.BAD_REQUEST, "after must be a byte offset (a non-negative integer)")
    return int(value)
