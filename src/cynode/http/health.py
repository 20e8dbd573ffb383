"""Asking another CyNode service whether it is healthy: its ``GET /healthz``, answered in words."""

from __future__ import annotations

import ssl

import httpx


async def healthz_problem(
    name: str, base_url: str, timeout_seconds: float, *, trust: ssl.SSLContext | None = None
) -> str | None:
    """None when ``base_url``'s ``/healthz`` answers 200, else why not, naming the service as ``name``.

    ``trust`` verifies an HTTPS service (default: the system trust store).
    """
    url = base_url.rstrip("/") + "/healthz"
    try:
        async with httpx.AsyncClient(timeout=timeout_seconds, trust_env=False, verify=trust or True) as client:
            response = await client.get(url)
    except httpx.TransportError as exc:
        return f"{name} at {url} does not answer: {exc.__class__.__name__}"
    if response.status_code != httpx.codes.OK:
        return f"{name} at {url} answered {response.status_code}"
    return None
