"""The web console over plain HTTP against a real gateway: sessions, CSRF, headers, authorization, bad input."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from cynode.settings import Role
from tests.fixtures.identity import ADMIN_HANDLE, ADMIN_PASSWORD, USER_PASSWORD, create_user, login
from tests.fixtures.stack import RunningStack
from tests.web.console import console_client, csrf_token, gateway_stack_on, page_token, sign_in


def set_cookie_headers(response: httpx.Response, name: str) -> list[str]:
    return [value for value in response.headers.get_list("set-cookie") if value.startswith(f"{name}=")]


@pytest.fixture(scope="module")
def admin(console_stack: RunningStack) -> Iterator[httpx.Client]:
    with console_client(console_stack) as client:
        assert sign_in(client, ADMIN_HANDLE, ADMIN_PASSWORD).status_code == 303
        yield client


def new_user(console_stack: RunningStack, handle: str) -> None:
    api = console_stack.client(Role.GATEWAY)
    create_user(api, login(api, ADMIN_HANDLE, ADMIN_PASSWORD), handle)


@pytest.fixture
def alice(console_stack: RunningStack, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """A signed-in non-admin, new for each test."""
    handle = "u" + re.sub(r"[^a-z0-9]", "", request.node.name.lower())[-30:]
    new_user(console_stack, handle)
    with console_client(console_stack) as client:
        assert sign_in(client, handle, USER_PASSWORD).status_code == 303
        yield client


def test_login_sets_a_strict_httponly_session_cookie(console_stack: RunningStack) -> None:
    with console_client(console_stack) as client:
        response = sign_in(client, ADMIN_HANDLE, ADMIN_PASSWORD)
        assert response.status_code == 303
        assert response.headers["location"] == "/tasks"
        (cookie,) = set_cookie_headers(response, "cynode_session")
        attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/"} <= attributes
        assert "secure" not in attributes, "plain HTTP: a Secure cookie would never come back"
        assert client.get("/tasks").status_code == 200


def test_a_wrong_password_shows_the_form_again_without_a_session(console_stack: RunningStack) -> None:
    with console_client(console_stack) as client:
        response = sign_in(client, ADMIN_HANDLE, "not-the-password")
        assert response.status_code == 401
        assert "Invalid credentials" in response.text
        assert 'value="admin"' in response.text
        assert not set_cookie_headers(response, "cynode_session")
        assert client.get("/tasks").status_code == 303


def test_login_without_its_csrf_token_is_refused(console_stack: RunningStack) -> None:
    with console_client(console_stack) as client:
        client.get("/login")
        response = client.post("/login", data={"handle": ADMIN_HANDLE, "password": ADMIN_PASSWORD})
        assert response.status_code == 403
        assert "CSRF" in response.text
        assert not set_cookie_headers(response, "cynode_session")


def test_a_state_change_without_the_csrf_token_is_refused_and_changes_nothing(alice: httpx.Client) -> None:
    for data in ({"prompt": "echo sneaky", "input_mode": "commands"}, {"prompt": "echo x", "csrf_token": "forged"}):
        response = alice.post("/tasks", data=data)
        assert response.status_code == 403
        assert "Missing or invalid CSRF token" in response.text
    assert "No tasks" in alice.get("/tasks").text
    assert alice.post("/logout", data={"csrf_token": ""}).status_code == 403
    assert alice.get("/tasks").status_code == 200, "the refused logout ended the session"


def test_pages_forbid_inline_scripts_framing_and_caching(admin: httpx.Client) -> None:
    for path in ("/tasks", "/tasks/new", "/status", "/admin/users", "/login", "/tasks/no-such-task"):
        response = admin.get(path)
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert "unsafe-eval" not in policy
        assert "frame-ancestors 'none'" in policy
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
    script = re.search(r'src="(/static/[^"]+/console\.js)"', admin.get("/tasks").text)
    assert script
    asset = admin.get(script.group(1))
    assert asset.status_code == 200
    assert asset.headers["content-type"].startswith("text/javascript")
    assert "immutable" in asset.headers["cache-control"]
    assert admin.get("/static/0000000000000000/console.js").status_code == 404


def test_a_page_without_a_session_sends_the_browser_to_login_and_back(console_stack: RunningStack) -> None:
    with console_client(console_stack) as client:
        response = client.get("/tasks?status=queued")
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=%2Ftasks%3Fstatus%3Dqueued"
        form = client.get(response.headers["location"])
        assert 'name="next" value="/tasks?status=queued"' in form.text
        data = {"handle": ADMIN_HANDLE, "password": ADMIN_PASSWORD, "csrf_token": csrf_token(form.text)}
        signed_in = client.post("/login", data={**data, "next": "/tasks?status=queued"})
        assert signed_in.headers["location"] == "/tasks?status=queued"
    with console_client(console_stack) as client:
        posted = client.post("/tasks/some-task/cancel", data={"csrf_token": "x"})
        assert posted.status_code == 303
        assert posted.headers["location"] == "/login?next=%2Ftasks", "a form post is not replayed after login"


@pytest.mark.parametrize("target", ["//evil.example/steal", "https://evil.example/", "/\\evil.example"])
def test_login_never_redirects_off_the_console(console_stack: RunningStack, target: str) -> None:
    with console_client(console_stack) as client:
        form = client.get("/login", params={"next": target})
        assert 'name="next" value="/tasks"' in form.text
        data = {"handle": ADMIN_HANDLE, "password": ADMIN_PASSWORD, "csrf_token": csrf_token(form.text)}
        assert client.post("/login", data={**data, "next": target}).headers["location"] == "/tasks"


def test_a_non_admin_sees_no_admin_link_and_gets_403_on_admin_pages(alice: httpx.Client, admin: httpx.Client) -> None:
    assert 'href="/admin/users"' in admin.get("/tasks").text
    assert 'href="/admin/users"' not in alice.get("/tasks").text
    assert alice.get("/admin/users").status_code == 403
    token = page_token(alice)
    refused = alice.post("/admin/users", data={"handle": "mallory", "password": USER_PASSWORD, "csrf_token": token})
    assert refused.status_code == 403
    assert "Admin required" in refused.text


def test_an_admin_creates_disables_enables_and_resets_a_user(admin: httpx.Client, console_stack: RunningStack) -> None:
    token = page_token(admin, "/admin/users")
    created = admin.post("/admin/users", data={"handle": "bob", "password": USER_PASSWORD, "csrf_token": token})
    assert created.status_code == 303
    user_page = created.headers["location"]
    assert user_page.endswith("?notice=created")
    user_path = user_page.partition("?")[0]
    assert "User created." in admin.get(user_page).text
    assert admin.post(f"{user_path}/disable", data={"csrf_token": token}).status_code == 303
    assert '<dd id="user-state">disabled</dd>' in admin.get(user_path).text
    with console_client(console_stack) as bob:
        assert sign_in(bob, "bob", USER_PASSWORD).status_code == 401
    assert admin.post(f"{user_path}/enable", data={"csrf_token": token}).status_code == 303
    new_password = "a-brand-new-password"
    reset = admin.post(f"{user_path}/reset_password", data={"password": new_password, "csrf_token": token})
    assert reset.headers["location"].endswith("?notice=password_reset")
    with console_client(console_stack) as bob:
        assert sign_in(bob, "bob", new_password).status_code == 303
    duplicate = admin.post("/admin/users", data={"handle": "bob", "password": USER_PASSWORD, "csrf_token": token})
    assert duplicate.status_code == 409
    assert 'value="bob"' in duplicate.text


def test_the_task_list_filters_and_pages(alice: httpx.Client) -> None:
    token = page_token(alice)
    for number in range(22):
        created = alice.post("/tasks", data={"prompt": f"echo {number}", "input_mode": "commands", "csrf_token": token})
        assert created.status_code == 303
    first = alice.get("/tasks")
    assert first.text.count('<tr>\n      <td><a href="/tasks/') == 20
    next_link = re.search(r'href="(/tasks\?cursor=[^"]+)" rel="next"', first.text)
    assert next_link
    second = alice.get(next_link.group(1).replace("&amp;", "&"))
    assert second.text.count('<tr>\n      <td><a href="/tasks/') == 2
    assert "First page" in second.text
    assert "No tasks with status completed." in alice.get("/tasks", params={"status": "completed"}).text
    assert alice.get("/tasks", params={"status": "queued"}).text.count("status-queued") >= 20


def test_a_task_page_shows_hostile_text_as_text_and_can_cancel(alice: httpx.Client) -> None:
    token = page_token(alice)
    hostile = "<script>alert(1)</script>"
    created = alice.post("/tasks", data={"prompt": f"echo '{hostile}'", "input_mode": "commands", "csrf_token": token})
    detail = alice.get(created.headers["location"])
    assert hostile not in detail.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in detail.text
    assert 'data-live-url="/tasks/' in detail.text
    live = alice.get(created.headers["location"] + "/live")
    assert live.headers["content-type"] == "application/json"
    assert live.json() == {"status": "queued", "finished": False, "stdout": "", "stderr": ""}
    canceled = alice.post(created.headers["location"] + "/cancel", data={"csrf_token": token})
    assert canceled.headers["location"] == created.headers["location"]
    after = alice.get(created.headers["location"]).text
    assert "status-canceled" in after
    assert "Cancel task" not in after
    assert 'data-live-url=""' in after


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/tasks?status=sleeping", 400, "status must be one of"),
        ("/tasks?cursor=not-a-cursor", 400, "Invalid cursor"),
        ("/tasks/00000000-0000-0000-0000-000000000000", 404, "Task not found"),
        ("/tasks/no-such-task/live", 404, "Task not found"),
    ],
)
def test_bad_page_requests_get_an_error_page(alice: httpx.Client, path: str, status: int, message: str) -> None:
    response = alice.get(path)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert message in response.text


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"prompt": "   ", "input_mode": "commands"}, "prompt is required"),
        ({"prompt": "echo hi", "input_mode": "telepathy"}, "input_mode"),
        ({"prompt": "echo hi", "task_name": "x" * 201}, "task_name"),
        ({"prompt": "echo hi", "task_name": "!!!"}, "task_name must contain letters or digits"),
    ],
)
def test_a_bad_task_form_is_shown_again_with_the_reason(
    alice: httpx.Client, data: dict[str, str], message: str
) -> None:
    response = alice.post("/tasks", data={**data, "csrf_token": page_token(alice)})
    assert response.status_code == 400
    assert message in response.text
    assert '<form class="stack" method="post" action="/tasks">' in response.text
    assert "No tasks" in alice.get("/tasks").text


def test_a_form_post_must_be_a_form(alice: httpx.Client) -> None:
    token = page_token(alice)
    response = alice.post("/tasks", json={"prompt": "echo hi", "csrf_token": token}, headers={"X-CSRF-Token": token})
    assert response.status_code == 415
    assert "No tasks" in alice.get("/tasks").text


@pytest.mark.parametrize("user_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_an_unknown_user_page_is_an_error(admin: httpx.Client, user_id: str) -> None:
    response = admin.get(f"/admin/users/{user_id}")
    assert response.status_code == (400 if user_id == "not-a-uuid" else 404)


def test_logout_ends_the_session_everywhere(console_stack: RunningStack) -> None:
    new_user(console_stack, "carol")
    with console_client(console_stack) as client:
        sign_in(client, "carol", USER_PASSWORD)
        stolen = client.cookies["cynode_session"]
        response = client.post("/logout", data={"csrf_token": page_token(client)})
        assert response.status_code == 303
        assert response.headers["location"] == "/login"
        assert set_cookie_headers(response, "cynode_session")[0].startswith('cynode_session=""')
        assert client.get("/tasks").status_code == 303
    with console_client(console_stack) as thief:
        thief.cookies.set("cynode_session", stolen)
        assert thief.get("/tasks").status_code == 303


def test_an_unusable_access_token_is_renewed_once_for_concurrent_requests(console_stack: RunningStack) -> None:
    new_user(console_stack, "erin")
    with console_client(console_stack) as client:
        assert sign_in(client, "erin", USER_PASSWORD).status_code == 303
        _, _, refresh_token = client.cookies["cynode_session"].partition("~")
        # Stands for an access token past its expiry (the next test lets one really expire).
        stale_cookie = f"not-a-valid-access-token~{refresh_token}"

        def load(_: int) -> httpx.Response:
            with console_client(console_stack) as browser_tab:
                browser_tab.cookies.set("cynode_session", stale_cookie)
                return browser_tab.get("/tasks")

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(load, range(4)))
        assert [answer.status_code for answer in answers] == [200] * 4
        renewed = {set_cookie_headers(answer, "cynode_session")[0] for answer in answers}
        assert len(renewed) == 1, "every concurrent request got the one renewed pair"
        # A late request still carrying the retired pair is served too, and the session survives.
        assert load(0).status_code == 200
        client.cookies.set("cynode_session", renewed.pop().split(";")[0].partition("=")[2])
        assert client.get("/tasks").status_code == 200


def test_an_expired_access_token_is_renewed_transparently(module_dsn: str, tmp_path: Path) -> None:
    ttl = 2
    with (
        gateway_stack_on(module_dsn, tmp_path, {"identity.access_token_ttl_seconds": ttl}) as stack,
        console_client(stack) as client,
    ):
        assert sign_in(client, ADMIN_HANDLE, ADMIN_PASSWORD).status_code == 303
        signed_in_with = client.cookies["cynode_session"]
        time.sleep(ttl + 0.5)
        page = client.get("/tasks")
        assert page.status_code == 200
        assert set_cookie_headers(page, "cynode_session")
        assert client.cookies["cynode_session"] != signed_in_with


def test_the_status_page_shows_readiness_with_its_reason_and_the_queue(alice: httpx.Client) -> None:
    def queued() -> int:
        page = alice.get("/status")
        assert page.status_code == 200
        # No node has registered with this stack, so the orchestrator says why it is not ready.
        assert "not ready" in page.text
        assert re.search(r'<span id="not-ready-reason">[^<]*node[^<]*</span>', page.text), page.text
        match = re.search(r'<dd id="jobs-queued">(\d+)</dd>', page.text)
        assert match
        return int(match.group(1))

    before = queued()
    alice.post("/tasks", data={"prompt": "echo waits", "input_mode": "commands", "csrf_token": page_token(alice)})
    assert queued() == before + 1


def test_two_open_login_forms_both_work(console_stack: RunningStack) -> None:
    with console_client(console_stack) as client:
        first_tab = csrf_token(client.get("/login").text)
        csrf_token(client.get("/login").text)  # a second tab loads the form later
        data = {"handle": ADMIN_HANDLE, "password": ADMIN_PASSWORD, "csrf_token": first_tab}
        assert client.post("/login", data=data).status_code == 303


def test_another_users_task_is_not_found_in_the_console(alice: httpx.Client, admin: httpx.Client) -> None:
    created = alice.post(
        "/tasks", data={"prompt": "echo mine", "input_mode": "commands", "csrf_token": page_token(alice)}
    )
    task_path = created.headers["location"]
    assert admin.get(task_path).status_code == 404
    assert admin.get(f"{task_path}/live").status_code == 404
    assert admin.post(f"{task_path}/cancel", data={"csrf_token": page_token(admin)}).status_code == 404
    assert "status-queued" in alice.get(task_path).text
