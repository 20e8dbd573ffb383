"""Problem details, the body limit, and health endpoints shared by every app, over real HTTP."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import httpx
import pytest
from litestar import Request, post

from cynode.http.app import build_app
from cynode.http.problems import ProblemError
from cynode.http.server import ServedApp

LIMIT = 1024
received_bodies: list[int] = []
readiness_reason: list[str | None] = ["warming up (try again soon)"]


@post("/echo-size")
async def echo_size(request: Request) -> dict[str, int]:  # type: ignore[type-arg]
    body = await request.body()
    received_bodies.append(len(body))
    return {"size": len(body)}


@post("/teapot")
async def teapot() -> None:
    raise ProblemError(409, "the pot is busy", headers={"Retry-After": "3"})


@post("/explode")
async def explode() -> None:
    raise RuntimeError("database password is hunter2")


async def readiness() -> str | None:
    return readiness_reason[0]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    app = build_app(route_handlers=[echo_size, teapot, explode], readiness=readiness, max_body_bytes=LIMIT)
    served = ServedApp("glue", app, "127.0.0.1", 0)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(served.start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield served.base_url
    asyncio.run_coroutine_threadsafe(served.stop(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=10) as http:
        yield http


def _assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "status"} <= body.keys()
    return body  # type: ignore[no-any-return]


def test_healthz_is_plain_ok(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.text == "ok"
    assert response.headers["content-type"].startswith("text/plain")


def test_readyz_reports_the_reason_then_ready(client: httpx.Client) -> None:
    response = client.get("/readyz")
    assert (response.status_code, response.text) == (503, "warming up (try again soon)")
    readiness_reason[0] = None
    try:
        response = client.get("/readyz")
        assert (response.status_code, response.text) == (200, "ready")
    finally:
        readiness_reason[0] = "warming up (try again soon)"


def test_unknown_route_and_wrong_method_are_problems(client: httpx.Client) -> None:
    _assert_problem(client.get("/nope"), 404)
    _assert_problem(client.get("/teapot"), 405)


def test_declared_oversized_body_is_refused_unread(client: httpx.Client) -> None:
    received_bodies.clear()
    body = _assert_problem(client.post("/echo-size", content=b"x" * (LIMIT + 1)), 413)
    assert body["detail"] == "Request body exceeds maximum size"
    assert received_bodies == []


def test_streamed_oversized_body_is_refused(client: httpx.Client) -> None:
    received_bodies.clear()

    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b"y" * 512

    _assert_problem(client.post("/echo-size", content=chunks()), 413)
    assert received_bodies == []


def test_body_at_the_limit_is_accepted(client: httpx.Client) -> None:
    response = client.post("/echo-size", content=b"z" * LIMIT)
    assert response.status_code == 201
    assert response.json() == {"size": LIMIT}


def test_problem_error_keeps_status_detail_and_headers(client: httpx.Client) -> None:
    response = client.post("/teapot")
    body = _assert_problem(response, 409)
    assert body["detail"] == "the pot is busy"
    assert response.headers["retry-after"] == "3"


def test_internal_errors_leak_nothing(client: httpx.Client) -> None:
    response = client.post("/explode")
    body = _assert_problem(response, 500)
    assert body["detail"] == "Internal server error"
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
