"""The list-paging rule every API shares: pages follow an opaque ``cursor``; ``offset`` is refused, never ignored."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from cynode.http.problems import ProblemError

OFFSET_REFUSED = "offset paging is not supported; pass the next_cursor of the previous page as cursor"


def refuse_offset(query: Mapping[str, Any]) -> None:
    """A 400 problem naming the cursor parameter when the query asks for ``offset`` paging."""
    if "offset" in query:
        raise ProblemError(HTTPStatus.BAD_REQUEST, OFFSET_REFUSED)
