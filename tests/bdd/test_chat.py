"""Chat scenarios on the real all-in-one stack (embedded llama.cpp model): upstream's three
OpenAI-compatible chat e2e scenarios and the orchestrator's "Chat returns model response"."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pytest_bdd import parsers, scenarios, then, when

from tests.fixtures.identity import Session
from tests.fixtures.inference import MODEL_ALIAS
from tests.fixtures.stack import RunningStack

scenarios("e2e/chat_openai_compatible.feature", "orchestrator/orchestrator_chat.feature")

OPENAI_MESSAGES = {"messages": [{"role": "user", "content": "What is the capital of France?"}], "max_tokens": 12}


@pytest.fixture
def fresh_dsn(module_dsn: str) -> str:
    """Every scenario of this module shares the module's database and its one chat stack."""
    return module_dsn


@pytest.fixture
def gateway_stack(chat_stack: RunningStack) -> RunningStack:
    return chat_stack


@pytest.fixture
def outcome() -> dict[str, Any]:
    return {}


@when(parsers.parse('I call GET "{path}"'))
def call_get(gateway: httpx.Client, session: Session, outcome: dict[str, Any], path: str) -> None:
    outcome["response"] = gateway.get(path, headers=session.headers)


@when(parsers.parse('I call POST "{path}" with OpenAI-format messages'))
def call_post_messages(gateway: httpx.Client, session: Session, db: Any, outcome: dict[str, Any], path: str) -> None:
    outcome["tasks_before"] = db.execute("SELECT count(*) AS n FROM tasks").fetchone()["n"]
    outcome["response"] = gateway.post(path, json=OPENAI_MESSAGES, headers=session.headers, timeout=120)


@when(parsers.parse('I send a chat message "{message}"'))
def send_chat_message(gateway: httpx.Client, session: Session, outcome: dict[str, Any], message: str) -> None:
    body = {"messages": [{"role": "user", "content": message}], "max_tokens": 12}
    outcome["response"] = gateway.post("/v1/chat/completions", json=body, headers=session.headers, timeout=120)


@then(parsers.parse("the response status is {status:d}"))
def response_status(outcome: dict[str, Any], status: int) -> None:
    assert outcome["response"].status_code == status, outcome["response"].text


@then("the response is a list-models payload")
def list_models_payload(outcome: dict[str, Any]) -> None:
    body = outcome["response"].json()
    assert body["object"] == "list"
    assert body["data"]
    assert all(entry["object"] == "model" and isinstance(entry["id"], str) for entry in body["data"])


@then('the list names "cynodeai.pm" and the node\'s model')
def list_names_models(outcome: dict[str, Any]) -> None:
    ids = [entry["id"] for entry in outcome["response"].json()["data"]]
    assert ids[0] == "cynodeai.pm"
    assert MODEL_ALIAS in ids


@then(parsers.parse('the response contains a completion at "choices[0].message.content"'))
def completion_at_content(outcome: dict[str, Any]) -> None:
    content = outcome["response"].json()["choices"][0]["message"]["content"]
    assert isinstance(content, str)
    assert content.strip()


@then("the response is a chat completion")
def is_chat_completion(outcome: dict[str, Any]) -> None:
    response = outcome["response"]
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]


@then("no task was created for the chat")
def no_task_created(db: Any, outcome: dict[str, Any]) -> None:
    assert db.execute("SELECT count(*) AS n FROM tasks").fetchone()["n"] == outcome["tasks_before"]
