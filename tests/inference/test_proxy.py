"""The per-job inference proxy on its Unix socket, against a scripted upstream and the real model."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from cynode.inference.node import NodeInference
from cynode.inference.proxy import MAX_REQUEST_BYTES, InferenceProxy
from cynode.inference.upstream import Upstream
from tests.fixtures.inference import MODEL_ALIAS, FakeUpstream

# A base model (no chat template) answers a sentence to complete, not an instruction.
CHAT = {"messages": [{"role": "user", "content": "The capital of France is"}], "max_tokens": 8}


async def started_proxy(tmp_path: Path, upstream: Upstream, **options: float) -> InferenceProxy:
    run_dir = tmp_path / "run"
    run_dir.mkdir(exist_ok=True)
    proxy = InferenceProxy(run_dir / "inference.sock", upstream, job_id="proxy-test", **options)  # type: ignore[arg-type]
    await proxy.start()
    return proxy


def client_of(proxy: InferenceProxy) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(uds=str(proxy.socket_path))
    return httpx.AsyncClient(base_url="http://localhost", transport=transport, timeout=120)


@pytest.fixture
async def model_proxy(tmp_path: Path, embedded_inference: NodeInference) -> AsyncIterator[httpx.AsyncClient]:
    upstream = embedded_inference.upstream()
    assert upstream is not None
    proxy = await started_proxy(tmp_path, upstream)
    async with client_of(proxy) as client:
        yield client
    await proxy.stop()


async def test_the_socket_exists_and_healthz_answers_over_it(tmp_path: Path, fake_upstream: FakeUpstream) -> None:
    proxy = await started_proxy(tmp_path, fake_upstream.upstream)
    try:
        assert stat.S_ISSOCK(os.stat(proxy.socket_path).st_mode)
        async with client_of(proxy) as client:
            response = await client.get("/healthz")
        assert (response.status_code, response.text) == (200, "ok")
        assert fake_upstream.requests == []
    finally:
        await proxy.stop()
    assert not proxy.socket_path.exists()


async def test_a_chat_completion_comes_from_the_model(model_proxy: httpx.AsyncClient) -> None:
    response = await model_proxy.post("/v1/chat/completions", json=CHAT)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"] == MODEL_ALIAS  # filled in by the proxy: the request named no model
    assert answer["choices"][0]["message"]["content"].strip()


async def test_models_and_completions_are_forwarded(model_proxy: httpx.AsyncClient) -> None:
    models = await model_proxy.get("/v1/models")
    assert [entry["id"] for entry in models.json()["data"]] == [MODEL_ALIAS]
    completion = await model_proxy.post("/v1/completions", json={"prompt": "The sky is", "max_tokens": 4})
    assert completion.status_code == 200, completion.text
    assert completion.json()["choices"][0]["text"]


async def test_a_streamed_completion_is_relayed_as_events(model_proxy: httpx.AsyncClient) -> None:
    async with model_proxy.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = [line async for line in response.aiter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert len(events) > 2


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/api/generate", 404),
        ("POST", "/v1/embeddings", 404),
        ("GET", "/", 404),
        ("GET", "/v1/chat/completions", 405),
        ("DELETE", "/v1/models", 405),
    ],
)
async def test_only_the_inference_routes_are_served(
    tmp_path: Path, fake_upstream: FakeUpstream, method: str, path: str, status: int
) -> None:
    proxy = await started_proxy(tmp_path, fake_upstream.upstream)
    try:
        async with client_of(proxy) as client:
            response = await client.request(method, path, json=CHAT)
    finally:
        await proxy.stop()
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert fake_upstream.requests == []


@pytest.mark.parametrize("chunked", [False, True])
async def test_bodies_over_ten_mib_are_refused_before_forwarding(
    tmp_path: Path, fake_upstream: FakeUpstream, chunked: bool
) -> None:
    body = b"x" * (MAX_REQUEST_BYTES + 1)

    async def pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 1024 * 1024):
            yield body[start : start + 1024 * 1024]

    proxy = await started_proxy(tmp_path, fake_upstream.upstream)
    try:
        async with client_of(proxy) as client:
            response = await client.post("/v1/chat/completions", content=pieces() if chunked else body)
    finally:
        await proxy.stop()
    assert response.status_code == 413
    assert fake_upstream.requests == []


async def test_only_content_headers_reach_the_backend_and_come_back(
    tmp_path: Path, fake_upstream: FakeUpstream
) -> None:
    proxy = await started_proxy(tmp_path, fake_upstream.upstream)
    headers = {"Authorization": "Bearer leaked", "Cookie": "session=1", "X-Api-Key": "k", "Accept": "application/json"}
    try:
        async with client_of(proxy) as client:
            response = await client.post("/v1/chat/completions", json={**CHAT, "model": "chosen"}, headers=headers)
    finally:
        await proxy.stop()
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    [sent] = fake_upstream.requests
    head, _, body = sent.partition(b"\r\n\r\n")
    assert b"leaked" not in head
    assert b"session=1" not in head
    assert b"x-api-key" not in head.lower()
    assert b"accept: application/json" in head.lower()
    assert json.loads(body)["model"] == "chosen"  # a model the request names is kept


async def test_a_slow_backend_gets_a_gateway_timeout(tmp_path: Path, fake_upstream: FakeUpstream) -> None:
    fake_upstream.delay = 5
    proxy = await started_proxy(tmp_path, fake_upstream.upstream, timeout_seconds=0.5)
    try:
        async with client_of(proxy) as client:
            response = await client.post("/v1/chat/completions", json=CHAT)
    finally:
        await proxy.stop()
    assert response.status_code == 504


async def test_an_unreachable_backend_is_a_bad_gateway(tmp_path: Path) -> None:
    proxy = await started_proxy(tmp_path, Upstream("http+unix://%2Fnonexistent%2Fllama.sock", None))
    try:
        async with client_of(proxy) as client:
            response = await client.get("/v1/models")
    finally:
        await proxy.stop()
    assert response.status_code == 502
