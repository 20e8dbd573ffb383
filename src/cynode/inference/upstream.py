"""Talking to an OpenAI-compatible inference API at a base URL, over TCP or a Unix socket.

Owns the ``http+unix://<percent-encoded socket path>`` URL form (the one sandboxes get in
``INFERENCE_PROXY_URL``, also used for the embedded server's private socket), building an httpx
client for either form, and the ``/v1/models`` probe every backend is checked with.
"""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

import httpx

UNIX_SCHEME = "http+unix"
# The Host header a Unix-socket request carries; the server behind the socket ignores it.
_UNIX_HOST = "http://localhost"
PROBE_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class Upstream:
    """A backend's base URL and the model it serves when a request names none."""

    base_url: str
    model: str | None
    chat_template: bool = True
    """False for a model without a chat template: chat requests are framed for it
    (``cynode.inference.framing``)."""


def unix_socket_url(socket_path: str) -> str:
    """``http+unix://`` URL of a socket path, the whole path percent-encoded into the authority."""
    return f"{UNIX_SCHEME}://{quote(socket_path, safe='')}"


@functools.cache
def _tls_context() -> ssl.SSLContext:
    # Built once: httpx would load a CA bundle for every client, ~30 ms of each job's proxy start.
    return ssl.create_default_context()


def client_for(base_url: str, *, timeout: float) -> httpx.AsyncClient:
    """A client whose relative request paths (``/v1/...``) go to ``base_url``.

    Redirects are not followed and no environment proxy or ``.netrc`` credentials are used: the
    upstream is always node-local.
    """
    parts = urlsplit(base_url)
    unix = parts.scheme == UNIX_SCHEME
    return httpx.AsyncClient(
        base_url=_UNIX_HOST if unix else base_url.rstrip("/"),
        transport=httpx.AsyncHTTPTransport(uds=unquote(parts.netloc), verify=_tls_context()) if unix else None,
        timeout=timeout,
        trust_env=False,
        verify=_tls_context(),
    )


async def available_models(base_url: str) -> list[str] | None:
    """Model ids ``GET /v1/models`` lists, or None when the API does not answer with them."""
    try:
        async with client_for(base_url, timeout=PROBE_TIMEOUT_SECONDS) as client:
            response = await client.get("/v1/models")
        if response.status_code != httpx.codes.OK:
            return None
        entries = response.json().get("data", [])
        return [str(entry["id"]) for entry in entries if isinstance(entry, dict) and "id" in entry]
    except (httpx.HTTPError, ValueError, AttributeError):
        return None
