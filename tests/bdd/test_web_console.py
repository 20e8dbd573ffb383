"""Web console scenarios in a real Chromium: against the all-in-one stack, and against a real ``cynode serve``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect
from pytest_bdd import given, parsers, scenarios, then, when

from cynode.sandbox import PodmanService
from cynode.settings import Role
from tests.fixtures.browser import record_dialogs
from tests.fixtures.chat import start_chat_stack
from tests.fixtures.identity import ADMIN_HANDLE, ADMIN_PASSWORD, IDENTITY_ENV, USER_PASSWORD, login
from tests.fixtures.serve import Serve
from tests.fixtures.stack import RunningStack
from tests.web.browsing import create_commands_task, signed_in_page, status_when_output_shows
from tests.web.console import GENEROUS_LOGIN_LIMITS

scenarios("web/console.feature", "web/console_serve.feature")

# Long enough for a sandbox job or a chat answer on a loaded two-core host; the page updates itself meanwhile.
TASK_TIMEOUT_MS = 120_000
WEB_NODE = "web-node-01"


@pytest.fixture(scope="module")
def web_node_stack(
    module_dsn: str, podman_service: PodmanService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    """Every role in one process, its node running sandbox jobs and the embedded llama.cpp model; shared
    by the module's scenarios."""
    directory = tmp_path_factory.mktemp("web-node")
    running = start_chat_stack(
        directory, module_dsn, podman_service.url, slug=WEB_NODE, overrides=GENEROUS_LOGIN_LIMITS
    )
    yield running
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


def _sign_in(
    browser: Browser, console_url: str, contexts: list[BrowserContext], handle: str, **context_options: Any
) -> Page:
    password = ADMIN_PASSWORD if handle == ADMIN_HANDLE else USER_PASSWORD
    page = signed_in_page(browser, console_url, handle, password, **context_options)
    contexts.append(page.context)
    expect(page.get_by_role("heading", name="Tasks")).to_be_visible()
    return page


@given(parsers.parse('I am signed in to the console as "{handle}"'), target_fixture="page")
@when(parsers.parse('I sign in to the console as "{handle}"'), target_fixture="page")
def signed_in(browser: Browser, console_url: str, contexts: list[BrowserContext], handle: str) -> Page:
    return _sign_in(browser, console_url, contexts, handle)


@given(
    parsers.parse('I am signed in to the console as "{handle}" in a browser without JavaScript'), target_fixture="page"
)
def signed_in_without_scripts(browser: Browser, console_url: str, contexts: list[BrowserContext], handle: str) -> Page:
    return _sign_in(browser, console_url, contexts, handle, java_script_enabled=False)


@given(parsers.parse('I created a commands task "{command}" in the console'))
@when(parsers.parse('I create a commands task "{command}" in the console'))
def create_task_in_console(page: Page, outcome: dict[str, Any], command: str) -> None:
    outcome["dialogs"] = record_dialogs(page)
    create_commands_task(page, command)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Task ")
    outcome["task_url"] = page.url


@then(parsers.parse('the task page shows the status "{status}" without a reload by me'))
def task_status_shown(page: Page, status: str) -> None:
    expect(page.locator("#task-status")).to_have_text(status, timeout=TASK_TIMEOUT_MS)


@then(parsers.parse('the task page\'s output is "{text}"'))
def task_output_is(page: Page, text: str) -> None:
    expect(page.locator("#task-stdout")).to_have_text(text.strip())
    expect(page.get_by_role("heading", name="Result")).to_be_visible()


@then(parsers.parse('the task page shows "{text}" in its output while the task is not yet completed'))
def output_before_completion(page: Page, text: str) -> None:
    status_then = status_when_output_shows(page, text, TASK_TIMEOUT_MS)
    assert status_then != "completed", "the output showed up only once the task had completed"


@then(parsers.parse('the task page\'s output is the lines "{lines}"'))
def task_output_lines(page: Page, lines: str) -> None:
    expect(page.get_by_role("heading", name="Result")).to_be_visible()
    assert page.locator("#task-stdout").text_content() == "".join(f"{line}\n" for line in lines.split())


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


# Records every length the newest answer's text takes while it arrives, to tell a stream from one piece.
_WATCH_ANSWER = """() => {
    window.answerLengths = [];
    const log = document.getElementById("chat-log");
    new MutationObserver(() => {
        const answers = log.querySelectorAll("li[data-role=assistant] .content");
        if (answers.length) window.answerLengths.push(answers[answers.length - 1].textContent.length);
    }).observe(log, {subtree: true, childList: true, characterData: true});
}"""


@when(parsers.parse('I ask "{question}" in the console chat with the model "{model}"'))
def ask_in_chat(page: Page, outcome: dict[str, Any], question: str, model: str) -> None:
    outcome["dialogs"] = record_dialogs(page)
    page.get_by_role("link", name="Chat", exact=True).click()
    page.wait_for_url("**/chat")
    page.get_by_label("Model").select_option(model)
    page.evaluate(_WATCH_ANSWER)
    page.get_by_label("Message").fill(question)
    page.get_by_role("button", name="Send").click()


@when(parsers.parse('I send "{question}" with the console\'s chat form'))
def send_chat_form(page: Page, outcome: dict[str, Any], question: str) -> None:
    outcome["question"] = question
    page.get_by_role("link", name="Chat", exact=True).click()
    page.wait_for_url("**/chat")
    page.get_by_label("Message").fill(question)
    # The click waits for the page that follows, which comes once the whole answer is written.
    page.get_by_role("button", name="Send").click(timeout=TASK_TIMEOUT_MS)


@then("the page that comes back shows my question and an answer")
def answered_in_one_piece(page: Page, outcome: dict[str, Any]) -> None:
    page.wait_for_url("**/chat?thread=*", timeout=TASK_TIMEOUT_MS)
    expect(page.locator("#chat-log li[data-role=user] .content").last).to_have_text(outcome["question"])
    assert page.locator("#chat-log li[data-role=assistant] .content").last.inner_text().strip()


@then("the answer streams into the conversation as text")
def answer_streamed(page: Page, outcome: dict[str, Any]) -> None:
    expect(page.locator("#chat-status")).to_have_text("Answered.", timeout=TASK_TIMEOUT_MS)
    text = page.locator("#chat-log li[data-role=assistant] .content").last.inner_text()
    assert text.strip(), "the answer is empty"
    lengths = page.evaluate("window.answerLengths")
    assert len({length for length in lengths if length > 0}) >= 2, f"the answer arrived in one piece: {lengths}"
    assert outcome["dialogs"] == []
    outcome["answer"] = text


@then("the stored conversation shows the same answer after a reload")
def stored_conversation(page: Page, outcome: dict[str, Any]) -> None:
    page.wait_for_url("**/chat?thread=*")
    page.reload()
    stored = page.locator("#chat-log li[data-role=assistant] .content").last
    expect(stored).to_have_text(outcome["answer"], use_inner_text=True)
    expect(page.get_by_role("navigation", name="Conversations").locator("[aria-current=page]")).to_have_count(1)


@when(parsers.parse('I {action:w} the node "{slug}" in the console'))
def node_action(page: Page, action: str, slug: str) -> None:
    page.get_by_role("link", name="Nodes", exact=True).click()
    page.wait_for_url("**/admin/nodes")
    page.get_by_role("button", name=f"{action.capitalize()} {slug}").click()


@then(parsers.parse('the nodes page shows "{slug}" as "{state}"'))
def nodes_page_shows(page: Page, slug: str, state: str) -> None:
    expect(page.get_by_role("status")).to_have_text(f"Node {slug} is now {state}.")
    expect(page.locator(f"#node-{slug} .admin-state")).to_have_text(state)


@then(parsers.parse('the admin API shows the node "{slug}" as "{state}"'))
def admin_api_shows(web_node_stack: RunningStack, slug: str, state: str) -> None:
    gateway = web_node_stack.client(Role.GATEWAY)
    answer = gateway.get(f"/v1/nodes/{slug}", headers=login(gateway, ADMIN_HANDLE, ADMIN_PASSWORD).headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["admin_state"] == state


def _setting_section(page: Page, key: str) -> Locator:
    return page.locator("section.setting", has=page.get_by_role("heading", name=key, exact=True))


@when(parsers.parse('I set "{key}" to "{value}" in the console'))
def set_setting(page: Page, key: str, value: str) -> None:
    page.get_by_role("link", name="Settings", exact=True).click()
    page.wait_for_url("**/admin/settings")
    section = _setting_section(page, key)
    section.get_by_label("New value").select_option(value)
    section.get_by_role("button", name="Save").click()


@then(parsers.parse('the settings page shows "{key}" as "{value}"'))
def settings_page_shows(page: Page, key: str, value: str) -> None:
    expect(page.get_by_role("status")).to_have_text(f"Saved {key}.")
    expect(_setting_section(page, key).locator(".setting-value")).to_have_text(f'"{value}"')


@then(parsers.parse('the status page shows the "{first}" and "{second}" roles healthy'))
def status_lists_roles(page: Page, first: str, second: str) -> None:
    page.get_by_role("link", name="Status", exact=True).click()
    for role in (first, second):
        expect(page.locator(f"#role-{role} th")).to_contain_text(role)
        expect(page.locator(f"#role-{role} td").first).to_have_text("healthy")
