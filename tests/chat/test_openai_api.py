"""The OpenAI-compatible surface, driven by the official ``openai`` package against the real
all-in-one stack answering from the embedded llama.cpp model."""

from __future__ import annotations

import httpx
import openai
import pytest

from cynode.settings import Role
from tests.fixtures.chat import openai_client
from tests.fixtures.identity import Session
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
