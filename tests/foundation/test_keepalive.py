"""Kept-alive connections answer as fast as fresh ones: no response or request waits for a delayed ACK.

A response written in two parts (headers, then body) on a socket without ``TCP_NODELAY`` waits for
the peer's delayed ACK, about 40 ms on Linux, but only once the connection has left its quick-ACK
start. So the first request of a fresh connection is the yardstick: the later ones on a kept-alive
connection must be of its order, whatever the speed of the machine.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import threading
import time
from collections.abc import Iterator

import pytest
from litestar import Request, post

from cynode.client.api import GatewayClient
from cynode.http.app import build_app
from cynode.http.server import ServedApp

REQUESTS = 20
FRESH_CONNECTIONS = 5
# A delayed ACK costs 40 ms against a sub-millisecond request; a factor of 10 over the first request
# leaves room for a busy machine and still catches it.
STALL_FACTOR = 10


@post("/v1/auth/login")
async def echo_login(request: Request) -> dict[str, object]:  # type: ignore[type-arg]
    body = await request.json()
    return {"access_token": body["handle"], "refresh_token": "r" * 40, "expires_in": 900}


async def ready() -> None:
    return None


@pytest.fixture(scope="module")
def served() -> Iterator[ServedApp]:
    app = build_app(route_handlers=[echo_login], readiness=ready, max_body_bytes=1 << 20)
    served = ServedApp("keepalive", app, "127.0.0.1", 0)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(served.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield served
    asyncio.run_coroutine_threadsafe(served.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")]
    length = int(lengths[0].split(b":")[1])
    while len(body) < length:
        body += sock.recv(65536)
    return head


def _assert_no_stall(fresh: list[float], kept_alive: list[float]) -> None:
    baseline, measured = statistics.median(fresh), statistics.median(kept_alive)
    assert measured < STALL_FACTOR * baseline, (
        f"kept-alive requests wait for a delayed ACK: {measured * 1000:.2f} ms at the median, "
        f"against {baseline * 1000:.2f} ms for the first request of a fresh connection"
    )


def _raw_requests(port: int, count: int) -> list[float]:
    request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        # The client side must not stall either, so only the server's writes are measured.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        durations = []
        for _ in range(count):
            started = time.perf_counter()
            sock.sendall(request)
            assert _read_response(sock).startswith(b"HTTP/1.1 200")
            durations.append(time.perf_counter() - started)
    return durations


def _cli_logins(base_url: str, count: int) -> list[float]:
    # An httpx request with a body may go out as two writes (headers, body), like the server's answers.
    with GatewayClient(base_url) as client:
        durations = []
        for number in range(count):
            started = time.perf_counter()
            client.login(f"user{number}", "x")
            durations.append(time.perf_counter() - started)
    return durations


def test_server_answers_kept_alive_requests_without_waiting_for_an_ack(served: ServedApp) -> None:
    fresh = [_raw_requests(served.port, 1)[0] for _ in range(FRESH_CONNECTIONS)]
    _assert_no_stall(fresh, _raw_requests(served.port, REQUESTS)[1:])


def test_cli_client_sends_kept_alive_requests_without_waiting_for_an_ack(served: ServedApp) -> None:
    fresh = [_cli_logins(served.base_url, 1)[0] for _ in range(FRESH_CONNECTIONS)]
    _assert_no_stall(fresh, _cli_logins(served.base_url, REQUESTS)[1:])
