"""The OpenAI-compatible surface, driven by the official ``openai`` package against the real
all-in-one stack answering from the embedded llama.cpp model."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest

from cynode.settings import DEFAULT_MAX_REQUEST_BYTES, Role
from tests.fixtures.chat import openai_client, settle
from tests.fixtures.identity import Session, assert_problem
from tests.fixtures.inference import MODEL_ALIAS
from tests.fixtures.stack import RunningStack

QUESTION = "What is the capital of France?"


@pytest.fixture(scope="module")
def client(chat_stack: RunningStack, chat_admin: Session) -> openai.OpenAI:
    return openai_client(chat_stack.url(Role.GATEWAY), chat_admin)


def test_models_lists_the_pm_surface_and_the_nodes_model(client: openai.OpenAI) -> None:
    ids = [model.id for model in client.models.list()]
    assert ids[0] == "cynodeai.pm"
    assert MODEL_ALIAS in ids


@pytest.mark.parametrize("model", ["cynodeai.pm", MODEL_ALIAS])
def test_completion_is_a_non_empty_answer(client: openai.OpenAI, model: str) -> None:
    completion = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": QUESTION}], max_tokens=16
    )
    assert completion.choices[0].message.content.strip()
    assert completion.model == model
    assert completion.usage is not None
    assert completion.usage.completion_tokens > 0


def test_missing_or_empty_model_means_cynodeai_pm(chat_gateway: httpx.Client, chat_admin: Session) -> None:
    for body in ({}, {"model": ""}):
        response = chat_gateway.post(
            "/v1/chat/completions",
            json={
                **body,
                "messages": [{"role": "user", "content": QUESTION, "name": "ignored"}],
                "max_tokens": 8,
                "some_future_field": {"x": 1},
            },
            headers=chat_admin.headers,
        )
        assert response.status_code == 200, response.text
        assert response.json()["model"] == "cynodeai.pm"
        assert response.json()["choices"][0]["message"]["content"].strip()


def test_streamed_completion_ends_with_done_and_usage(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="cynodeai.pm",
        messages=[{"role": "user", "content": "Tell me about the sea."}],
        max_tokens=16,
        stream=True,
    )
    chunks = list(stream)
    texts = [chunk.choices[0].delta.content for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]
    assert "".join(texts).strip()
    assert chunks[0].choices[0].delta.role == "assistant"
    usage = chunks[-1].usage
    assert usage is not None
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens >= len(texts), "every text chunk is at least one token"
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """``response`` is an OpenAI error (never a problem document) with ``status``; returns ``error``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/models"), ("POST", "/v1/chat/completions")])
@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic YWRtaW46YWRtaW4="])
def test_no_or_bad_token_is_a_401_in_the_openai_shape(
    chat_gateway: httpx.Client, method: str, path: str, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    body = {"messages": [{"role": "user", "content": "hi"}]}
    response = chat_gateway.request(method, path, json=body if method == "POST" else None, headers=headers)
    error = openai_error(response, 401)
    assert error["code"] == "invalid_api_key"
    assert response.headers["www-authenticate"] == "Bearer"


def test_a_body_over_the_limit_is_a_413_in_the_openai_shape_and_other_routes_keep_problems(
    chat_gateway: httpx.Client, chat_admin: Session
) -> None:
    oversized = b"x" * (DEFAULT_MAX_REQUEST_BYTES + 1)
    headers = {**chat_admin.headers, "Content-Type": "application/json"}
    error = openai_error(chat_gateway.post("/v1/chat/completions", content=oversized, headers=headers), 413)
    assert error["code"] == "request_too_large"
    assert_problem(chat_gateway.post("/v1/tasks", content=oversized, headers=headers), 413)


def test_the_official_client_sees_an_authentication_error(chat_stack: RunningStack) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai_client(chat_stack.url(Role.GATEWAY), None).models.list()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 400, "invalid_request"),
        (b"{}", 400, "invalid_request"),
        (b'{"messages": []}', 400, "invalid_request"),
        (b'{"messages": [{"role": "user", "content": 5}]}', 400, "invalid_request"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}', 400, "invalid_request"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "model": "no-such-model"}', 404, "model_not_found"),
    ],
)
def test_bad_requests_change_nothing_and_answer_in_the_openai_shape(
    chat_stack: RunningStack,
    chat_gateway: httpx.Client,
    chat_admin: Session,
    chat_db: Any,
    body: bytes,
    status: int,
    code: str,
) -> None:
    settle(chat_stack)
    before = chat_db.execute("SELECT count(*) AS n FROM chat_messages").fetchone()["n"]
    headers = {**chat_admin.headers, "Content-Type": "application/json"}
    response = chat_gateway.post("/v1/chat/completions", content=body, headers=headers)
    assert openai_error(response, status)["code"] == code
    if status == 400:
        assert chat_db.execute("SELECT count(*) AS n FROM chat_messages").fetchone()["n"] == before


def test_a_body_that_is_not_json_by_content_type_is_a_415(chat_gateway: httpx.Client, chat_admin: Session) -> None:
    response = chat_gateway.post(
        "/v1/chat/completions", content=b"hi", headers={**chat_admin.headers, "Content-Type": "text/plain"}
    )
    openai_error(response, 415)


def test_an_unknown_project_is_a_404(chat_gateway: httpx.Client, chat_admin: Session) -> None:
    response = chat_gateway.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}]},
        headers={**chat_admin.headers, "OpenAI-Project": "no-such-project"},
    )
    assert openai_error(response, 404)["code"] == "project_not_found"


def test_eight_concurrent_chats_all_complete(chat_stack: RunningStack, chat_admin: Session) -> None:
    client = openai_client(chat_stack.url(Role.GATEWAY), chat_admin, timeout=120)

    def ask(index: int) -> str:
        completion = client.chat.completions.create(
            model="", messages=[{"role": "user", "content": f"Say a number bigger than {index}."}], max_tokens=8
        )
        return completion.choices[0].message.content or ""

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, range(8)))
    assert all(answer.strip() for answer in answers)


def test_stream_chunks_arrive_before_the_last_one_is_generated(chat_stack: RunningStack, chat_admin: Session) -> None:
    """What ``curl -N`` shows: the first event is out while the model is still generating."""
    body = {"messages": [{"role": "user", "content": "Tell me a long story."}], "max_tokens": 64, "stream": True}
    arrivals: list[float] = []
    with (
        httpx.Client(base_url=chat_stack.url(Role.GATEWAY), timeout=60) as client,
        client.stream("POST", "/v1/chat/completions", json=body, headers=chat_admin.headers) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = []
        for line in response.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.monotonic())
                events.append(line)
    assert events[-1] == "data: [DONE]"
    assert len(events) > 4
    # Relayed as generated: the first token came long before the last one (not one buffered burst).
    assert arrivals[-2] - arrivals[0] > (arrivals[-1] - arrivals[0]) / 2


def test_warm_up_answers_at_once_and_is_safe_to_repeat(chat_gateway: httpx.Client, chat_admin: Session) -> None:
    for body in (None, {"model": MODEL_ALIAS}, {"model": MODEL_ALIAS}, {"model": "no-such-model"}):
        response = chat_gateway.post("/v1/chat/warm", json=body, headers=chat_admin.headers)
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "warming"
    assert chat_gateway.post("/v1/chat/warm").status_code == 401
    bad = chat_gateway.post(
        "/v1/chat/warm", content=b"{", headers={**chat_admin.headers, "Content-Type": "application/json"}
    )
    assert bad.status_code == 400
    # A chat right after warm-ups still completes.
    completion = chat_gateway.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        headers=chat_admin.headers,
        timeout=120,
    )
    assert completion.status_code == 200, completion.text


@pytest.mark.parametrize("authorization", [None, "Bearer not-the-node-token"])
def test_the_worker_inference_route_needs_the_nodes_token(chat_stack: RunningStack, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = chat_stack.client(Role.NODE).post(
        "/v1/worker/inference/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}, headers=headers
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


def test_the_worker_inference_route_answers_the_orchestrators_call(chat_stack: RunningStack) -> None:
    assert chat_stack.stack.chat is not None
    route = chat_stack.run(chat_stack.stack.chat.router.routes(MODEL_ALIAS))[0]
    headers = {"Authorization": f"Bearer {route.node.bearer_token()}"}
    worker = chat_stack.client(Role.NODE)
    path = "/v1/worker/inference/chat/completions"

    assert worker.post(path, json={"messages": "hi"}, headers=headers).status_code == 400
    answered = worker.post(
        path, json={"messages": [{"role": "user", "content": QUESTION}], "max_tokens": 8}, headers=headers, timeout=120
    )
    assert answered.status_code == 200, answered.text
    assert answered.json()["choices"][0]["message"]["content"].strip()
