"""Web console scenarios in a real Chromium: against the all-in-one stack, and against a real ``cynode serve``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect
from pytest_bdd import given, parsers, scenarios, then, when

from cynode.composition import parse_roles
from cynode.settings import Role
from tests.fixtures.browser import record_dialogs
from tests.fixtures.identity import ADMIN_HANDLE, ADMIN_PASSWORD, IDENTITY_ENV, USER_PASSWORD
from tests.fixtures.serve import Serve
from tests.fixtures.stack import RunningStack, start_all_in_one, start_stack
from tests.web.browsing import signed_in_page
from tests.web.console import console_settings

scenarios("web/console.feature", "web/console_serve.feature")

# Long enough for a sandbox job on a loaded two-core host; the page updates itself meanwhile.
TASK_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def web_node_stack(module_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """Every role in one process with a ready local node, shared by the module's scenarios."""
    directory = tmp_path_factory.mktemp("web-node")
    started: list[RunningStack] = []

    def factory(roles: str, *, env: dict[str, str], overrides: dict[str, Any]) -> RunningStack:
        running = start_stack(console_settings(module_dsn, directory / "data", overrides), parse_roles([roles]), env)
        started.append(running)
        return running

    try:
        yield start_all_in_one(factory, directory, node_slug="web-node-01", env=IDENTITY_ENV)
    finally:
        for running in started:
            running.stop()


@pytest.fixture
def contexts() -> Iterator[list[BrowserContext]]:
    """Browser contexts a scenario opened; closed when it ends."""
    opened: list[BrowserContext] = []
    yield opened
    for context in opened:
        context.close()


@pytest.fixture
def outcome() -> dict[str, Any]:
    return {}


@given(parsers.parse('the all-in-one stack with its local node "{slug}" ready'), target_fixture="console_url")
def all_in_one_stack(request: pytest.FixtureRequest, slug: str) -> str:
    running: RunningStack = request.getfixturevalue("web_node_stack")
    assert running.stack.node is not None
    assert running.stack.node.slug == slug
    return running.url(Role.GATEWAY)


@given('"cynode serve --role=gateway,orchestrator" is running', target_fixture="console_url")
def serve_running(data_dir: Path) -> Iterator[str]:
    serve = Serve(data_dir, roles="gateway,orchestrator", env=IDENTITY_ENV)
    try:
        serve.wait_healthy()
        yield serve.url(serve.gateway, "")
    finally:
        code, stderr = serve.terminate()
        assert code == 0, stderr


@given("a browser")
def a_browser(browser: Browser) -> None:
    assert browser.is_connected()


def _sign_in(browser: Browser, console_url: str, contexts: list[BrowserContext], handle: str) -> Page:
    password = ADMIN_PASSWORD if handle == ADMIN_HANDLE else USER_PASSWORD
    page = signed_in_page(browser, console_url, handle, password)
    contexts.append(page.context)
    expect(page.get_by_role("heading", name="Tasks")).to_be_visible()
    return page


@given(parsers.parse('I am signed in to the console as "{handle}"'), target_fixture="page")
@when(parsers.parse('I sign in to the console as "{handle}"'), target_fixture="page")
def signed_in(browser: Browser, console_url: str, contexts: list[BrowserContext], handle: str) -> Page:
    return _sign_in(browser, console_url, contexts, handle)


@given(parsers.parse('I created a commands task "{command}" in the console'))
@when(parsers.parse('I create a commands task "{command}" in the console'))
def create_commands_task(page: Page, outcome: dict[str, Any], command: str) -> None:
    outcome["dialogs"] = record_dialogs(page)
    page.get_by_role("link", name="New task").click()
    page.get_by_label("Commands", exact=True).check()
    page.get_by_label("Prompt, commands or script").fill(command)
    page.get_by_role("button", name="Create task").click()
    page.wait_for_url("**/tasks/*-*")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Task ")
    outcome["task_url"] = page.url


@then(parsers.parse('the task page shows the status "{status}" without a reload by me'))
def task_status_shown(page: Page, status: str) -> None:
    expect(page.locator("#task-status")).to_have_text(status, timeout=TASK_TIMEOUT_MS)


@then(parsers.parse('the task page\'s output is "{text}"'))
def task_output_is(page: Page, text: str) -> None:
    expect(page.locator("#task-stdout")).to_have_text(text.strip())
    expect(page.get_by_role("heading", name="Result")).to_be_visible()


@then("no dialog was opened")
def no_dialog(page: Page, outcome: dict[str, Any]) -> None:
    page.reload()  # render the finished page once more from the server: still only text
    expect(page.locator("#task-stdout")).to_have_text("<script>alert(1)</script>")
    assert outcome["dialogs"] == []
    assert page.evaluate("document.querySelectorAll('main script').length") == 0


@when("I cancel the task in the console")
def cancel_task(page: Page) -> None:
    page.get_by_role("button", name="Cancel task").click()


@when(parsers.parse('I create the user "{handle}" in the console'))
def create_user(page: Page, handle: str) -> None:
    page.get_by_role("link", name="Users").click()
    page.get_by_label("Handle", exact=True).fill(handle)
    page.get_by_label("Password", exact=True).fill(USER_PASSWORD)
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("status")).to_have_text("User created.")
    expect(page.locator("#user-state")).to_have_text("active")


@then(parsers.parse('the console menu has no "{label}" entry'))
def menu_lacks(page: Page, label: str) -> None:
    menu = page.get_by_role("navigation", name="Main")
    expect(menu.get_by_role("link", name="Tasks")).to_be_visible()
    expect(menu.get_by_role("link", name=label)).to_have_count(0)
    expect(page.locator('a[href^="/admin"]')).to_have_count(0)


@then(parsers.parse('opening "{path}" answers {status:d} "{message}"'))
def opening_answers(page: Page, path: str, status: int, message: str) -> None:
    response = page.goto(path)
    assert response is not None
    assert response.status == status
    expect(page.get_by_role("alert")).to_have_text(message)


@when("I open the task list")
def open_task_list(page: Page) -> None:
    page.get_by_role("link", name="Tasks", exact=True).click()
    page.wait_for_url("**/tasks")


@when("I log out of the console")
def log_out(page: Page) -> None:
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login")


@when("I go back in the browser")
def go_back(page: Page) -> None:
    page.go_back()


@then(parsers.parse('I see the login page without "{text}"'))
def login_page_without(page: Page, text: str) -> None:
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert text not in page.content()


@when(parsers.parse('the page posts a new task "{command}" without the CSRF token'), target_fixture="answer_status")
def post_without_csrf(page: Page, command: str) -> int:
    status: int = page.evaluate(
        """async (command) => {
            const body = new URLSearchParams({prompt: command, input_mode: "commands"});
            const response = await fetch("/tasks", {method: "POST", body});
            return response.status;
        }""",
        command,
    )
    return status


@then(parsers.parse("the answer is {status:d}"))
def answer_is(answer_status: int, status: int) -> None:
    assert answer_status == status


@then(parsers.parse('the task list does not show "{text}"'))
def task_list_lacks(page: Page, text: str) -> None:
    page.goto("/tasks")
    expect(page.get_by_role("heading", name="Tasks")).to_be_visible()
    assert text not in page.content()
