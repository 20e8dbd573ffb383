"""``cynode chat threads`` and ``cynode chat show`` against the real gateway and its stored conversations.

The stack has no node, so a question is stored in its thread and then answered 503: enough to
have conversations to list without a model.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from cynode.client.exit_codes import ExitCode
from cynode.settings import Role
from tests.client.conftest import Cli
from tests.fixtures.identity import ADMIN_HANDLE, ADMIN_PASSWORD, USER_PASSWORD, create_user, login
from tests.fixtures.stack import RunningStack

QUESTION = "what is \x1b[31mred\x1b[0m?"


def ask(gateway: httpx.Client, handle: str, password: str, question: str) -> None:
    session = login(gateway, handle, password)
    asked = gateway.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": question}]}, headers=session.headers
    )
    assert asked.status_code == 503, asked.text  # stored, then no node to answer


def stored_thread(cli: Cli) -> dict[str, Any]:
    listed = cli("chat", "threads", "--json")
    assert listed.exit_code == 0, listed.output
    [thread] = json.loads(listed.stdout)["threads"]
    return dict(thread)


def test_threads_and_show_print_the_callers_conversation(cli: Cli, logged_in: RunningStack) -> None:
    ask(logged_in.client(Role.GATEWAY), ADMIN_HANDLE, ADMIN_PASSWORD, QUESTION)
    thread = stored_thread(cli)

    listed = cli("chat", "threads")
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.startswith(f"{thread['id']}  ")
    assert "\x1b" not in listed.stdout  # text others wrote never drives the terminal

    shown = cli("chat", "show", thread["id"])
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("user (")
    assert "red" in lines[1]
    assert "\x1b" not in shown.stdout
    as_json = json.loads(cli("chat", "show", thread["id"], "--json").stdout)
    assert [(m["role"], m["content"]) for m in as_json["messages"]] == [("user", QUESTION)]
    assert as_json["next_cursor"] is None


def test_another_users_or_an_unknown_thread_is_not_found(cli: Cli, logged_in: RunningStack) -> None:
    gateway = logged_in.client(Role.GATEWAY)
    create_user(gateway, login(gateway, ADMIN_HANDLE, ADMIN_PASSWORD), "carol")
    ask(gateway, "carol", USER_PASSWORD, "carol's own question")
    assert json.loads(cli("chat", "threads", "--json").stdout)["threads"] == []  # the admin has none

    carols = httpx.get(
        f"{logged_in.url(Role.GATEWAY)}/v1/chat/threads",
        headers=login(gateway, "carol", USER_PASSWORD).headers,
    ).json()["threads"][0]["id"]
    for reference in (carols, "00000000-0000-0000-0000-000000000000", "not-a-thread"):
        refused = cli("chat", "show", reference)
        assert refused.exit_code == ExitCode.NOT_FOUND, refused.output
        assert "Chat thread not found" in refused.stderr


def test_usage_and_login_errors_have_their_exit_statuses(cli: Cli, logged_in: RunningStack) -> None:
    assert cli("chat", "threads", "--limit", "0").exit_code == ExitCode.USAGE
    assert cli("chat", "-m", "hi", "threads").exit_code == ExitCode.USAGE
    assert cli("chat", "show").exit_code == ExitCode.USAGE
    assert cli("logout").exit_code == 0
    for command in (("chat", "threads"), ("chat", "show", "00000000-0000-0000-0000-000000000000")):
        refused = cli(*command)
        assert refused.exit_code == ExitCode.AUTH, refused.output
        assert "cynode login" in refused.stderr
