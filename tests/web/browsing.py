"""Browser helpers for the console tests: sign in through the real login form, run axe-core on a page."""

from __future__ import annotations

from typing import Any

from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Page

_AXE = Axe()
BLOCKING_IMPACTS = frozenset({"serious", "critical"})


def signed_in_page(browser: Browser, base_url: str, handle: str, password: str, **context_options: Any) -> Page:
    """A page of a new browser context (its own cookies) after logging in through the form."""
    context: BrowserContext = browser.new_context(base_url=base_url, **context_options)
    page = context.new_page()
    page.goto("/login")
    page.get_by_label("Handle").fill(handle)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/tasks")
    return page


def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now, one line each."""
    results = _AXE.run(page)
    return [
        f"{violation['id']} ({violation['impact']}): {[node['target'] for node in violation['nodes']]}"
        for violation in results.response["violations"]
        if violation["impact"] in BLOCKING_IMPACTS
    ]


def create_commands_task(page: Page, command: str) -> None:
    """Create a commands task through the console's form; returns on the new task's page."""
    page.get_by_role("link", name="New task").click()
    page.get_by_label("Commands", exact=True).check()
    page.get_by_label("Prompt, commands or script").fill(command)
    page.get_by_role("button", name="Create task").click()
    page.wait_for_url("**/tasks/*-*")


def status_when_output_shows(page: Page, text: str, timeout_ms: float) -> str:
    """The task page's status at the moment its output first holds ``text``.

    Read in the same evaluation that first sees the text, so the two belong together.
    """
    status: str = page.wait_for_function(
        """text => {
            const output = document.getElementById("task-stdout");
            const status = document.getElementById("task-status");
            return output && output.textContent.includes(text) ? status.textContent : null;
        }""",
        arg=text,
        timeout=timeout_ms,
    ).json_value()
    return status
