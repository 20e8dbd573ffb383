"""A running task's output on its console page, in a real Chromium, before the task completes.

Every role runs in one process on the module's database, its node running sandbox jobs (no model).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from cynode.composition import parse_roles
from cynode.settings import Role
from tests.fixtures.identity import ADMIN_HANDLE, ADMIN_PASSWORD, IDENTITY_ENV
from tests.fixtures.stack import RunningStack, start_all_in_one, start_stack
from tests.web.browsing import create_commands_task, signed_in_page, status_when_output_shows
from tests.web.console import console_settings

TASK_TIMEOUT_MS = 120_000
LINES = ("line1", "line2", "line3", "line4", "line5")


@pytest.fixture(scope="module")
def sandbox_stack(module_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    directory = tmp_path_factory.mktemp("live-console")

    def on_module_database(
        roles: str, *, env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
    ) -> RunningStack:
        return start_stack(console_settings(module_dsn, directory / "data", overrides), parse_roles([roles]), env)

    running = start_all_in_one(
        on_module_database,
        directory,
        node_slug="live-console-node",
        env=IDENTITY_ENV,
        node_yaml_extra="inference:\n  mode: disabled\n",
    )
    yield running
    running.stop()


def test_the_output_streams_onto_the_task_page_before_completed(sandbox_stack: RunningStack, browser: Browser) -> None:
    page = signed_in_page(browser, sandbox_stack.url(Role.GATEWAY), ADMIN_HANDLE, ADMIN_PASSWORD)
    script = "for i in 1 2 3 4 5; do echo line$i; sleep 2; done"
    create_commands_task(page, script)

    assert status_when_output_shows(page, "line1", TASK_TIMEOUT_MS) != "completed"
    expect(page.locator("#task-status")).to_have_text("completed", timeout=TASK_TIMEOUT_MS)
    expect(page.get_by_role("heading", name="Result")).to_be_visible()
    assert page.locator("#task-stdout").text_content() == "".join(f"{line}\n" for line in LINES)
    page.context.close()
