"""Chat threads and messages: stored per (user, project), redacted, rotated after idling, paged by
cursor, and visible to their owner only."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.fixtures.chat import eventually, settle
from tests.fixtures.identity import Session, assert_problem, create_user, login
from tests.fixtures.stack import RunningStack

USER_PASSWORD = "thread-test-password"


@pytest.fixture(scope="module")
def bob(chat_gateway: httpx.Client, chat_admin: Session) -> Session:
    create_user(chat_gateway, chat_admin, "bob", USER_PASSWORD)
    return login(chat_gateway, "bob", USER_PASSWORD)


def chat(gateway: httpx.Client, session: Session, content: str, **headers: str) -> dict[str, Any]:
    response = gateway.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": content}], "max_tokens": 6},
        headers={**session.headers, **headers},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def threads(gateway: httpx.Client, session: Session, **params: Any) -> dict[str, Any]:
    response = gateway.get("/v1/chat/threads", params=params, headers=session.headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def messages(gateway: httpx.Client, session: Session, thread_id: str, **params: Any) -> httpx.Response:
    return gateway.get(f"/v1/chat/threads/{thread_id}/messages", params=params, headers=session.headers)


def test_a_chat_is_kept_in_the_users_active_thread(chat_gateway: httpx.Client, bob: Session, chat_db: Any) -> None:
    first = chat(chat_gateway, bob, "What is the capital of France?")
    chat(chat_gateway, bob, "And of Italy? my token is sk-abcdefghijklmnopqrstuvwx")

    listed = threads(chat_gateway, bob)["threads"]
    assert len(listed) == 1, "one active thread per (user, project)"
    thread = listed[0]
    default_project = chat_db.execute(
        "SELECT id FROM projects WHERE owner_id = (SELECT id FROM users WHERE handle = 'bob')"
    ).fetchone()["id"]
    assert thread["project_id"] == str(default_project)

    def all_four() -> list[dict[str, Any]] | None:
        page: list[dict[str, Any]] = messages(chat_gateway, bob, thread["id"]).json()["messages"]
        return page if len(page) == 4 else None

    stored = eventually(all_four, "both answers to be stored")
    assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
    assert stored[0]["content"] == "What is the capital of France?"
    assert stored[1]["content"] == first["choices"][0]["message"]["content"]
    assert stored[2]["content"] == "And of Italy? my token is SECRET_REDACTED"
    assert stored[1]["model"] == "cynodeai.pm"


def test_messages_are_paged_by_cursor(chat_gateway: httpx.Client, bob: Session) -> None:
    thread_id = threads(chat_gateway, bob)["threads"][0]["id"]
    everything = messages(chat_gateway, bob, thread_id).json()["messages"]
    paged: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = messages(chat_gateway, bob, thread_id, limit=1, **({"cursor": cursor} if cursor else {})).json()
        paged.extend(page["messages"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [m["id"] for m in paged] == [m["id"] for m in everything]


def test_another_project_and_an_idle_thread_get_new_threads(
    chat_stack: RunningStack, chat_gateway: httpx.Client, bob: Session, chat_db: Any
) -> None:
    chat_db.execute(
        "INSERT INTO projects (slug, display_name) VALUES ('shared-chat', 'Shared') ON CONFLICT (slug) DO NOTHING"
    )
    before = len(threads(chat_gateway, bob)["threads"])
    chat(chat_gateway, bob, "hello project", **{"OpenAI-Project": "shared-chat"})
    chat(chat_gateway, bob, "hello again project", **{"OpenAI-Project": "shared-chat"})
    assert len(threads(chat_gateway, bob)["threads"]) == before + 1

    settle(chat_stack)  # a record written after this would make the thread active again
    chat_db.execute(
        "UPDATE chat_threads SET updated_at = updated_at - interval '3 hours' "
        "WHERE user_id = (SELECT id FROM users WHERE handle = 'bob')"
    )
    chat(chat_gateway, bob, "after a long break")
    assert len(threads(chat_gateway, bob)["threads"]) == before + 2


def test_other_users_threads_are_invisible(chat_gateway: httpx.Client, chat_admin: Session, bob: Session) -> None:
    bobs_thread = threads(chat_gateway, bob)["threads"][0]["id"]
    assert bobs_thread not in {t["id"] for t in threads(chat_gateway, chat_admin)["threads"]}
    assert_problem(messages(chat_gateway, chat_admin, bobs_thread), 404)
    assert_problem(messages(chat_gateway, chat_admin, "not-a-uuid"), 404)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/chat/threads", {"limit": "0"}),
        ("/v1/chat/threads", {"limit": "many"}),
        ("/v1/chat/threads", {"cursor": "%%%"}),
        ("/v1/chat/threads/00000000-0000-0000-0000-000000000000/messages", {"limit": "500"}),
    ],
)
def test_bad_paging_is_a_400(chat_gateway: httpx.Client, bob: Session, path: str, params: dict[str, str]) -> None:
    assert_problem(chat_gateway.get(path, params=params, headers=bob.headers), 400)


def test_thread_routes_need_a_token(chat_gateway: httpx.Client) -> None:
    assert_problem(chat_gateway.get("/v1/chat/threads"), 401)
