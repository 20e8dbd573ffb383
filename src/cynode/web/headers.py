"""Headers every console response carries, whichever handler or error page produced it.

Owns the browser-side hardening: a Content-Security-Policy that allows only the console's own
scripts and styles (no inline script, no eval, no framing, forms post only to the console),
``no-store`` caching so nothing private outlives a logout in the browser's cache or history, and the
renewed session cookie when this request had to renew the token pair.
"""

from __future__ import annotations

from typing import Final

from litestar.datastructures import Cookie
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from cynode.web.session import RENEWED_COOKIE_STATE

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_HARDENING: Final = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
_PRIVATE_CACHING: Final = (b"cache-control", b"no-store")


def console_headers(app: ASGIApp) -> ASGIApp:
    """Litestar middleware: the hardening headers, ``no-store`` unless the handler chose a cache policy,
    and the renewed session cookie."""

    async def with_headers(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                names = {name.lower() for name, _ in headers}
                headers.extend(header for header in _HARDENING if header[0] not in names)
                if _PRIVATE_CACHING[0] not in names:
                    headers.append(_PRIVATE_CACHING)
                renewed: Cookie | None = scope.get("state", {}).get(RENEWED_COOKIE_STATE)
                if renewed is not None:
                    headers.append(renewed.to_encoded_header())
                message["headers"] = headers
            await send(message)

        await app(scope, receive, send_with_headers)

    return with_headers
