"""Every console page in a real Chromium: no serious axe-core violations, usable by keyboard and at phone width."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from cynode.settings import Role
from tests.fixtures.identity import ADMIN_HANDLE, ADMIN_PASSWORD
from tests.fixtures.stack import RunningStack
from tests.web.browsing import serious_violations, signed_in_page
from tests.web.console import registered_node

PHONE = {"width": 360, "height": 740}
PAGES = ("tasks", "new task", "task", "status", "users", "user", "chat", "nodes", "settings", "credentials")


@pytest.fixture(scope="module")
def pages(console_stack: RunningStack, browser: Browser) -> dict[str, str]:
    """The path of every kind of console page, with one task and one user made to show."""
    page = signed_in_page(browser, console_stack.url(Role.GATEWAY), ADMIN_HANDLE, ADMIN_PASSWORD)
    page.goto("/tasks/new")
    page.get_by_label("Commands", exact=True).check()
    page.get_by_label("Prompt, commands or script").fill("echo accessible")
    page.get_by_role("button", name="Create task").click()
    page.wait_for_url("**/tasks/*-*")
    task_path = page.url.removeprefix(console_stack.url(Role.GATEWAY))
    page.goto("/admin/users")
    page.get_by_label("Handle", exact=True).fill("axe-user")
    page.get_by_label("Password", exact=True).fill("axe-user-password")
    page.get_by_role("button", name="Create user").click()
    page.wait_for_url("**/admin/users/*")
    user_path = page.url.removeprefix(console_stack.url(Role.GATEWAY)).partition("?")[0]
    registered_node(console_stack, "axe-node")
    page.goto("/admin/credentials")
    page.get_by_label("Provider").fill("openai")
    page.get_by_label("Name", exact=True).fill("axe-key")
    page.get_by_label("Secret", exact=True).fill("sk-axe-secret")
    page.get_by_role("button", name="Add credential").click()
    expect(page.get_by_role("status")).to_have_text("Credential added.")
    page.goto("/chat")
    page.get_by_label("Message").fill("Is this page accessible?")
    page.get_by_role("button", name="Send").click()
    # No node serves a model on this stack: the question is kept and the page says why no answer came.
    expect(page.locator("#chat-status")).to_contain_text("No answer")
    page.context.close()
    return {
        "tasks": "/tasks",
        "new task": "/tasks/new",
        "task": task_path,
        "status": "/status",
        "users": "/admin/users",
        "user": user_path,
        "chat": "/chat",
        "nodes": "/admin/nodes",
        "settings": "/admin/settings",
        "credentials": "/admin/credentials",
        "error": "/tasks?status=bogus",
    }


@pytest.fixture(scope="module")
def admin_page(console_stack: RunningStack, browser: Browser) -> Iterator[Page]:
    page = signed_in_page(browser, console_stack.url(Role.GATEWAY), ADMIN_HANDLE, ADMIN_PASSWORD)
    yield page
    page.context.close()


@pytest.fixture(scope="module")
def phone_page(console_stack: RunningStack, browser: Browser) -> Iterator[Page]:
    page = signed_in_page(browser, console_stack.url(Role.GATEWAY), ADMIN_HANDLE, ADMIN_PASSWORD, viewport=PHONE)
    yield page
    page.context.close()


def test_the_login_page_has_no_serious_violations(console_stack: RunningStack, browser: Browser) -> None:
    context = browser.new_context(base_url=console_stack.url(Role.GATEWAY))
    page = context.new_page()
    page.goto("/login")
    assert serious_violations(page) == []
    context.close()


@pytest.mark.parametrize("name", [*PAGES, "error"])
def test_no_page_has_serious_violations(admin_page: Page, pages: dict[str, str], name: str) -> None:
    admin_page.goto(pages[name])
    assert serious_violations(admin_page) == []


@pytest.mark.parametrize("name", PAGES)
def test_every_page_fits_a_phone_screen(phone_page: Page, pages: dict[str, str], name: str) -> None:
    phone_page.goto(pages[name])
    overflow = phone_page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{name} scrolls sideways by {overflow} px at {PHONE['width']} px"


def test_a_task_can_be_created_with_the_keyboard_alone(admin_page: Page) -> None:
    admin_page.goto("/tasks/new")
    admin_page.keyboard.press("Tab")
    assert admin_page.evaluate("document.activeElement.textContent") == "Skip to content"
    admin_page.keyboard.press("Enter")
    admin_page.get_by_label("Commands", exact=True).focus()
    admin_page.keyboard.press("Space")
    admin_page.keyboard.press("Tab")
    admin_page.keyboard.type("echo typed")
    for _ in range(3):  # name, model access, then the submit button
        admin_page.keyboard.press("Tab")
    assert admin_page.evaluate("document.activeElement.textContent") == "Create task"
    admin_page.keyboard.press("Enter")
    admin_page.wait_for_url("**/tasks/*-*")
    assert admin_page.locator("pre.output").first.inner_text() == "echo typed"
