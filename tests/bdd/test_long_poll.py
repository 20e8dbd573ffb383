"""Long-poll across separate ``cynode serve`` processes (the serve harness): a ``?wait=N`` request
held by a gateway process is answered when its task ends. No node: the task stays queued until the
cancel ends it."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from pytest_bdd import parsers, scenarios, then, when

from tests.fixtures.identity import ADMIN_HANDLE, ADMIN_PASSWORD, Session, login

scenarios("tasks/long_poll.feature")

ANSWERED_WITHIN_SECONDS = 20
"""Well within the wait: an answer only once the wait ran out would fail here."""


@pytest.fixture
def requests() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool


@pytest.fixture
def long_poll() -> dict[str, Any]:
    return {}


@when(
    parsers.parse('I create a commands task "{command}" on the gateway process and long-poll it for {wait:d} seconds')
)
def create_and_long_poll(
    split_gateway: httpx.Client, requests: ThreadPoolExecutor, long_poll: dict[str, Any], command: str, wait: int
) -> None:
    session = login(split_gateway, ADMIN_HANDLE, ADMIN_PASSWORD)
    created = split_gateway.post(
        "/v1/tasks", json={"prompt": command, "input_mode": "commands"}, headers=session.headers
    )
    assert created.status_code == 201, created.text
    task_id = created.json()["id"]
    long_poll.update(
        session=session,
        task_id=task_id,
        answer=requests.submit(split_gateway.get, f"/v1/tasks/{task_id}?wait={wait}", headers=session.headers),
    )


@when("I cancel that task")
def cancel(split_gateway: httpx.Client, long_poll: dict[str, Any]) -> None:
    session: Session = long_poll["session"]
    canceled = split_gateway.post(f"/v1/tasks/{long_poll['task_id']}/cancel", headers=session.headers)
    assert canceled.status_code == 200, canceled.text


@then(parsers.parse('the long-poll answers with the task "{status}"'))
def answered(long_poll: dict[str, Any], status: str) -> None:
    answer: Future[httpx.Response] = long_poll["answer"]
    response = answer.result(timeout=ANSWERED_WITHIN_SECONDS)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == status
