"""The session cookie's attributes follow the connection: Secure exactly when the console is reached over TLS."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import Request

from cynode.web.session import browser_cookie, expired_cookie


def request_over(scheme: str) -> Request[Any, Any, Any]:
    return Request(
        scope={
            "type": "http",
            "scheme": scheme,
            "method": "GET",
            "path": "/tasks",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"console.example")],
            "server": ("console.example", 443),
        }
    )


@pytest.mark.parametrize(("scheme", "secure"), [("https", True), ("http", False)])
def test_the_cookie_is_secure_over_tls_and_always_httponly_and_strict(scheme: str, secure: bool) -> None:
    header = browser_cookie(request_over(scheme), "cynode_session", "a~b").to_header(header="").lower()
    assert "httponly" in header
    assert "samesite=strict" in header
    assert "path=/" in header
    assert ("secure" in header.replace("samesite", "")) is secure


def test_an_expired_cookie_is_empty_and_gone_at_once() -> None:
    header = expired_cookie(request_over("https"), "cynode_session").to_header(header="").lower()
    assert header.startswith('cynode_session=""')
    assert "max-age=0" in header
