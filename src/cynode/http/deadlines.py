"""Connection deadlines uvicorn does not have: request headers must arrive in time.

A client that opens connections and trickles header bytes (slowloris) would otherwise hold each
connection, and its slot under the connection limit, for as long as it likes. The protocol here
closes a connection whose request headers are not complete within the deadline, counted from the
moment the server starts waiting for a request (the connection opening, or the first byte of the
next request on a kept-alive connection; the idle time before that is the keep-alive timeout's).
"""

from __future__ import annotations

import asyncio
from typing import Final

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEADER_READ_TIMEOUT_SECONDS: Final = 10.0


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose request headers come too slowly."""

    header_read_timeout_seconds: float = HEADER_READ_TIMEOUT_SECONDS
    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_deadline()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_deadline is None:
            self._arm_header_deadline()

    def on_headers_complete(self) -> None:
        self._disarm_header_deadline()
        super().on_headers_complete()

    def _arm_header_deadline(self) -> None:
        self._disarm_header_deadline()
        self._header_deadline = self.loop.call_later(self.header_read_timeout_seconds, self._headers_too_slow)

    def _disarm_header_deadline(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def header_deadline_protocol(seconds: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class with its deadline set to ``seconds`` (uvicorn instantiates it itself)."""
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_read_timeout_seconds": seconds})
