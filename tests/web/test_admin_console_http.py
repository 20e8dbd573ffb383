"""The console's chat route and admin pages (users list, nodes, settings, credentials) over plain HTTP.

Each change made in the console is checked through the admin API as well: the console and the CLI
act on the same state.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from cynode.composition import parse_roles
from cynode.nodes.project_manager import EXECUTION_MODE_KEY, PINNED_MODEL_KEY, PREFER_HOST_KEY
from cynode.nodes.repository import PM_SETTING_PREFIX
from cynode.settings import Role
from tests.fixtures.identity import (
    ADMIN_HANDLE,
    ADMIN_PASSWORD,
    IDENTITY_ENV,
    USER_PASSWORD,
    Session,
    create_user,
    login,
)
from tests.fixtures.nodes import NodeClient
from tests.fixtures.stack import RunningStack, free_port, start_stack
from tests.web.console import console_client, console_settings, page_token, registered_node, sign_in

NODE_SLUG = "console-node-01"
PINNED_MODEL = f"{PM_SETTING_PREFIX}{PINNED_MODEL_KEY}"
PREFER_HOST = f"{PM_SETTING_PREFIX}{PREFER_HOST_KEY}"
EXECUTION_MODE = f"{PM_SETTING_PREFIX}{EXECUTION_MODE_KEY}"
SECRET = "sk-console-secret-0123456789"
ADMIN_PATHS = ("/admin/users", "/admin/nodes", "/admin/settings", "/admin/credentials")


@pytest.fixture(scope="module")
def api_admin(console_stack: RunningStack) -> Session:
    return login(console_stack.client(Role.GATEWAY), ADMIN_HANDLE, ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def admin(console_stack: RunningStack) -> Iterator[httpx.Client]:
    with console_client(console_stack) as client:
        assert sign_in(client, ADMIN_HANDLE, ADMIN_PASSWORD).status_code == 303
        yield client


@pytest.fixture(scope="module")
def member(console_stack: RunningStack, api_admin: Session) -> Iterator[httpx.Client]:
    create_user(console_stack.client(Role.GATEWAY), api_admin, "member")
    with console_client(console_stack) as client:
        assert sign_in(client, "member", USER_PASSWORD).status_code == 303
        yield client


@pytest.fixture(scope="module")
def node(console_stack: RunningStack) -> NodeClient:
    return registered_node(console_stack, NODE_SLUG)


def api_get(console_stack: RunningStack, session: Session, path: str) -> Any:
    response = console_stack.client(Role.GATEWAY).get(path, headers=session.headers)
    assert response.status_code == 200, response.text
    return response.json()


def admin_state_cell(page: str) -> str:
    match = re.search(rf'<tr id="node-{NODE_SLUG}">.*?<td class="admin-state">(\w+)</td>', page, re.S)
    assert match, page
    return match.group(1)


def test_a_non_admin_sees_no_admin_links_and_gets_403_everywhere(member: httpx.Client) -> None:
    home = member.get("/tasks").text
    token = page_token(member)
    for path in ADMIN_PATHS:
        assert f'href="{path}"' not in home
        assert member.get(path).status_code == 403
    for path in ("/admin/nodes/any/drain", f"/admin/settings/{PINNED_MODEL}", "/admin/credentials"):
        refused = member.post(path, data={"csrf_token": token, "value": "x"})
        assert refused.status_code == 403
        assert "Admin required" in refused.text


def test_a_demotion_made_by_hand_in_sql_holds_on_the_next_console_request(
    console_stack: RunningStack, api_admin: Session, module_dsn: str
) -> None:
    create_user(console_stack.client(Role.GATEWAY), api_admin, "deputy", is_admin=True)
    with console_client(console_stack) as deputy:
        assert sign_in(deputy, "deputy", USER_PASSWORD).status_code == 303
        assert deputy.get("/tasks").status_code == 200  # the session is now remembered by the gateway
        assert deputy.get("/admin/users").status_code == 200
        with psycopg.connect(module_dsn, autocommit=True) as conn:
            conn.execute("UPDATE users SET is_admin = false WHERE handle = 'deputy'")
        assert deputy.get("/admin/users").status_code == 403


def test_the_admin_menu_links_every_admin_page(admin: httpx.Client) -> None:
    home = admin.get("/tasks").text
    for path in (*ADMIN_PATHS, "/chat", "/status"):
        assert f'href="{path}"' in home
        page = admin.get(path)
        assert page.status_code == 200
        assert "unsafe-inline" not in page.headers["content-security-policy"]


def test_the_users_page_lists_users_by_handle(admin: httpx.Client, member: httpx.Client) -> None:
    page = admin.get("/admin/users").text
    handles = re.findall(r'<td><a href="/admin/users/[^"]+">([^<]+)</a></td>', page)
    assert {ADMIN_HANDLE, "member"} <= set(handles)
    assert handles == sorted(handles)
    bad_cursor = admin.get("/admin/users", params={"cursor": "%%%"})
    assert bad_cursor.status_code == 400
    assert "Invalid cursor" in bad_cursor.text


def test_the_nodes_page_shows_health_config_and_jobs(admin: httpx.Client, node: NodeClient) -> None:
    page = admin.get("/admin/nodes").text
    row = re.search(rf'<tr id="node-{NODE_SLUG}">(.*?)</tr>', page, re.S)
    assert row, page
    assert "takes jobs" in row.group(1)
    assert "ack applied" in row.group(1)
    assert "UTC" in row.group(1), "the last heartbeat is shown"
    assert admin_state_cell(page) == "enabled"
    assert f'aria-label="Drain {NODE_SLUG}"' in page


def test_an_admin_drains_disables_and_enables_a_node(
    admin: httpx.Client, node: NodeClient, console_stack: RunningStack, api_admin: Session
) -> None:
    token = page_token(admin, "/admin/nodes")
    for action, state in (("drain", "draining"), ("disable", "disabled"), ("enable", "enabled")):
        answer = admin.post(f"/admin/nodes/{NODE_SLUG}/{action}", data={"csrf_token": token})
        assert answer.status_code == 303
        page = admin.get(answer.headers["location"]).text
        assert f"Node {NODE_SLUG} is now {state}." in page
        assert admin_state_cell(page) == state
        assert api_get(console_stack, api_admin, f"/v1/nodes/{NODE_SLUG}")["admin_state"] == state
    again = admin.post(f"/admin/nodes/{NODE_SLUG}/enable", data={"csrf_token": token})
    assert f"Node {NODE_SLUG} was enabled already." in admin.get(again.headers["location"]).text


def test_a_node_action_without_csrf_or_for_an_unknown_node_changes_nothing(
    admin: httpx.Client, node: NodeClient
) -> None:
    assert admin.post(f"/admin/nodes/{NODE_SLUG}/drain", data={"reason": "no token"}).status_code == 403
    assert admin.post(f"/admin/nodes/{NODE_SLUG}/drain", data={"csrf_token": "forged"}).status_code == 403
    unknown = admin.post("/admin/nodes/no-such-node/drain", data={"csrf_token": page_token(admin)})
    assert unknown.status_code == 404
    assert "Node not found" in unknown.text
    assert admin_state_cell(admin.get("/admin/nodes").text) == "enabled"


def test_an_admin_sets_and_unsets_settings(
    admin: httpx.Client, console_stack: RunningStack, api_admin: Session
) -> None:
    token = page_token(admin, "/admin/settings")
    saved = admin.post(f"/admin/settings/{PINNED_MODEL}", data={"csrf_token": token, "value": "qwen3.5:0.8b"})
    assert saved.status_code == 303
    assert f"Saved {PINNED_MODEL}." in admin.get(saved.headers["location"]).text
    assert api_get(console_stack, api_admin, f"/v1/settings/{PINNED_MODEL}")["value"] == "qwen3.5:0.8b"
    assert admin.post(f"/admin/settings/{PREFER_HOST}", data={"csrf_token": token, "value": "false"}).status_code == 303
    assert api_get(console_stack, api_admin, f"/v1/settings/{PREFER_HOST}")["value"] is False
    unset = admin.post(f"/admin/settings/{PREFER_HOST}", data={"csrf_token": token, "value": "false", "unset": "1"})
    assert unset.status_code == 303
    assert api_get(console_stack, api_admin, f"/v1/settings/{PREFER_HOST}")["is_set"] is False


@pytest.mark.parametrize(
    ("key", "value", "status", "message"),
    [
        (PINNED_MODEL, "two words", 400, "must be a model name"),
        (PREFER_HOST, "maybe", 400, "must be true or false"),
        (EXECUTION_MODE, "sideways", 400, "must be one of"),
        ("no.such.setting", "1", 404, "unknown system setting"),
    ],
)
def test_a_refused_setting_shows_the_typed_error_and_changes_nothing(
    admin: httpx.Client, console_stack: RunningStack, api_admin: Session, key: str, value: str, status: int,
    message: str,
) -> None:  # fmt: skip
    before = api_get(console_stack, api_admin, "/v1/settings")
    answer = admin.post(f"/admin/settings/{key}", data={"csrf_token": page_token(admin), "value": value})
    assert answer.status_code == status
    assert message in answer.text
    assert api_get(console_stack, api_admin, "/v1/settings") == before


def test_an_admin_adds_rotates_and_disables_a_credential_without_seeing_its_secret(
    admin: httpx.Client, console_stack: RunningStack, api_admin: Session
) -> None:
    token = page_token(admin, "/admin/credentials")
    form = {"csrf_token": token, "provider": "openai", "name": "console-key", "secret": SECRET, "expires_at": ""}
    added = admin.post("/admin/credentials", data=form)
    assert added.status_code == 303
    page = admin.get(added.headers["location"]).text
    assert "Credential added." in page
    assert "console-key" in page
    assert SECRET not in page
    (listed,) = api_get(console_stack, api_admin, "/v1/credentials")["credentials"]
    credential_path = f"/admin/credentials/{listed['credential_id']}"
    duplicate = admin.post("/admin/credentials", data=form)
    assert duplicate.status_code == 409
    assert 'value="console-key"' in duplicate.text
    assert SECRET not in duplicate.text, "a refused form never echoes the secret"
    rotated = admin.post(f"{credential_path}/rotate", data={"csrf_token": token, "secret": SECRET + "-new"})
    assert "Secret replaced." in admin.get(rotated.headers["location"]).text
    disabled = admin.post(f"{credential_path}/disable", data={"csrf_token": token})
    page = admin.get(disabled.headers["location"]).text
    assert '<td class="credential-state">disabled</td>' in page
    assert SECRET not in page
    (after,) = api_get(console_stack, api_admin, "/v1/credentials")["credentials"]
    assert after["active"] is False


@pytest.mark.parametrize(
    ("path", "data", "status", "message"),
    [
        ("/admin/credentials", {"provider": "Bad Provider", "name": "k", "secret": SECRET}, 400, "provider must be"),
        ("/admin/credentials", {"provider": "openai", "name": "k", "secret": "  "}, 400, "secret must be"),
        ("/admin/credentials", {"provider": "openai", "name": "k", "secret": SECRET, "expires_at": "soon"}, 400,
         "expires_at must be a date"),
        ("/admin/credentials", {"provider": "openai", "name": "k", "secret": SECRET,
                                "expires_at": "2001-01-01T00:00"}, 400, "expires_at must lie in the future"),
        ("/admin/credentials/not-a-uuid/rotate", {"secret": SECRET}, 400, "Invalid credential id"),
        ("/admin/credentials/00000000-0000-0000-0000-000000000000/rotate", {"secret": SECRET}, 404,
         "Credential not found"),
        ("/admin/credentials/00000000-0000-0000-0000-000000000000/disable", {}, 404, "Credential not found"),
    ],
)  # fmt: skip
def test_bad_credential_forms_are_refused_and_store_nothing(
    admin: httpx.Client, console_stack: RunningStack, api_admin: Session, path: str, data: dict[str, str],
    status: int, message: str,
) -> None:  # fmt: skip
    before = api_get(console_stack, api_admin, "/v1/credentials")
    answer = admin.post(path, data={"csrf_token": page_token(admin), **data})
    assert answer.status_code == status
    assert message in answer.text
    assert SECRET not in answer.text
    assert api_get(console_stack, api_admin, "/v1/credentials") == before


def test_the_status_page_shows_each_role_and_nodes_to_admins(
    admin: httpx.Client, member: httpx.Client, node: NodeClient
) -> None:
    page = admin.get("/status").text
    for role in ("gateway", "orchestrator", f"node-{NODE_SLUG}"):
        assert f'<tr id="role-{role}">' in page
    node_row = re.search(rf'<tr id="role-node-{NODE_SLUG}">(.*?)</tr>', page, re.S)
    assert node_row
    assert "last heartbeat" in node_row.group(1)
    member_page = member.get("/status").text
    assert '<tr id="role-orchestrator">' in member_page
    assert "role-node-" not in member_page
    assert "Nodes are shown to administrators." in member_page


def test_the_chat_page_offers_the_models_and_threads_of_its_user(member: httpx.Client, admin: httpx.Client) -> None:
    page = member.get("/chat")
    assert page.status_code == 200
    assert '<option value="cynodeai.pm">' in page.text
    assert 'id="chat-form"' in page.text
    token = page_token(member, "/chat")
    # No node serves a model on this stack: the pipeline stores the question, then answers 503 in the OpenAI shape.
    asked = member.post(
        "/chat/completions",
        json={"messages": [{"role": "user", "content": "<b>what</b> is CyNode?"}], "stream": True},
        headers={"X-CSRF-Token": token},
    )
    assert asked.status_code == 503
    assert asked.json()["error"]["code"] == "cynodeai_no_node"
    threads = member.get("/chat").text
    link = re.search(r'<a href="(/chat\?thread=[0-9a-f-]+)"', threads)
    assert link, threads
    conversation = member.get(link.group(1)).text
    assert "&lt;b&gt;what&lt;/b&gt; is CyNode?" in conversation
    assert "<b>what</b>" not in conversation
    assert admin.get(link.group(1)).status_code == 404, "another user's thread is not found"


@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        ({"messages": [{"role": "user", "content": "hi"}]}, {}, 403, "CSRF"),
        ({"messages": [{"role": "user", "content": "hi"}]}, {"X-CSRF-Token": "forged"}, 403, "CSRF"),
        ({"messages": []}, None, 400, "messages must be a non-empty list"),
        ({"messages": "hello"}, None, 400, "messages"),
        ("not json", None, 400, ""),
    ],
)
def test_bad_chat_requests_answer_in_the_openai_shape_and_store_nothing(
    member: httpx.Client, body: object, headers: dict[str, str] | None, status: int, message: str
) -> None:
    token = page_token(member, "/chat")
    before = member.get("/chat").text.count('href="/chat?thread=')
    sent_headers = {"X-CSRF-Token": token} if headers is None else headers
    if isinstance(body, str):
        answer = member.post(
            "/chat/completions", content=body, headers={**sent_headers, "Content-Type": "application/json"}
        )
    else:
        answer = member.post("/chat/completions", json=body, headers=sent_headers)
    assert answer.status_code == status
    assert message in answer.json()["error"]["message"]
    assert member.get("/chat").text.count('href="/chat?thread=') == before


@pytest.mark.parametrize("thread", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_an_unknown_thread_is_not_found(member: httpx.Client, thread: str) -> None:
    answer = member.get("/chat", params={"thread": thread})
    assert answer.status_code == 404
    assert "Chat thread not found" in answer.text


def test_the_chat_form_without_a_script_asks_through_the_same_pipeline(member: httpx.Client) -> None:
    token = page_token(member, "/chat")
    # No node serves a model on this stack: the page comes back with the reason, the question is kept.
    answer = member.post("/chat", data={"csrf_token": token, "message": "plain form question", "model": ""})
    assert answer.status_code == 503
    assert "No answer: no node serves" in answer.text
    assert "plain form question" in member.get("/chat").text


@pytest.mark.parametrize(
    ("data", "status", "message"),
    [
        ({"message": "   "}, 400, "Write a message first"),
        ({"message": "hi", "thread": "00000000-0000-0000-0000-000000000000"}, 404, "Chat thread not found"),
        ({"message": "hi", "thread": "not-a-thread"}, 404, "Chat thread not found"),
    ],
)
def test_a_bad_chat_form_is_refused_and_stores_nothing(
    member: httpx.Client, data: dict[str, str], status: int, message: str
) -> None:
    before = member.get("/chat").text.count('href="/chat?thread=')
    answer = member.post("/chat", data={"csrf_token": page_token(member, "/chat"), **data})
    assert answer.status_code == status
    assert message in answer.text
    assert member.post("/chat", data={"message": "hi"}).status_code == 403
    assert member.get("/chat").text.count('href="/chat?thread=') == before


@pytest.mark.parametrize("control_plane", ["the stack's", "nowhere"])
def test_a_gateway_alone_shows_the_health_of_the_orchestrator_elsewhere(
    console_stack: RunningStack, module_dsn: str, tmp_path: Path, control_plane: str
) -> None:
    public_url = (
        console_stack.url(Role.ORCHESTRATOR) if control_plane == "the stack's" else f"http://127.0.0.1:{free_port()}"
    )
    settings = console_settings(module_dsn, tmp_path, {"control_plane.public_url": public_url})
    gateway = start_stack(settings, parse_roles([Role.GATEWAY.value]), IDENTITY_ENV)
    try:
        with console_client(gateway) as client:
            assert sign_in(client, ADMIN_HANDLE, ADMIN_PASSWORD).status_code == 303
            page = client.get("/status").text
    finally:
        gateway.stop()
    row = re.search(r'<tr id="role-orchestrator">(.*?)</tr>', page, re.S)
    assert row, page
    assert "(another process)" in row.group(1)
    if control_plane == "nowhere":
        assert "unhealthy</span>: the control plane at http://127.0.0.1:" in row.group(1)
        assert "/healthz does not answer: ConnectError" in row.group(1)
    else:
        assert "healthy</span>" in row.group(1)
        assert "unhealthy" not in row.group(1)
