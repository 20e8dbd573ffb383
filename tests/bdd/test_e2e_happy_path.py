"""End to end on one host: the real all-in-one stack (gateway, orchestrator, node manager, Worker API,
podman sandbox and the embedded llama.cpp model), driven only through the user API."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from cynode.contracts.tasks import TERMINAL_TASK_STATUSES
from tests.fixtures.identity import IDENTITY_ENV, Session
from tests.fixtures.stack import RunningStack, StackFactory, start_all_in_one

scenarios("e2e/single_node_happy_path.feature")


@pytest.fixture
def gateway_stack(stack_factory: StackFactory, tmp_path: Path) -> RunningStack:
    """Every role in one process, the node named by its startup YAML (overrides the identity fixture)."""
    return start_all_in_one(stack_factory, tmp_path, node_slug="test-node-01", env=IDENTITY_ENV)


@pytest.fixture
def outcome() -> dict[str, Any]:
    return {}


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@given(
    parsers.parse(
        'the local node "{slug}" registered with the PSK, fetched its configuration and acknowledged it as applied'
    )
)
def local_node_applied(gateway_stack: RunningStack, db: Any, slug: str) -> None:
    def applied() -> bool:
        row = db.execute(
            "SELECT status, config_version, config_ack_status, config_ack_version FROM nodes WHERE node_slug = %s",
            (slug,),
        ).fetchone()
        return bool(
            row
            and row["status"] == "active"
            and row["config_ack_status"] == "applied"
            and row["config_ack_version"] == row["config_version"]
        )

    _wait(applied, 60, f"node {slug} to apply its config")


def _create(gateway: httpx.Client, session: Session, outcome: dict[str, Any], body: dict[str, Any]) -> None:
    response = gateway.post("/v1/tasks", json=body, headers=session.headers)
    assert response.status_code == 201, response.text
    outcome["task"] = response.json()


@when(parsers.parse('I create a task in commands mode with "{command}"'))
def create_command_task(gateway: httpx.Client, session: Session, outcome: dict[str, Any], command: str) -> None:
    _create(gateway, session, outcome, {"prompt": command, "input_mode": "commands"})


@when(parsers.parse('I create a task in commands mode with "{command}" that uses inference'))
def create_inference_task(gateway: httpx.Client, session: Session, outcome: dict[str, Any], command: str) -> None:
    _create(gateway, session, outcome, {"prompt": command, "input_mode": "commands", "use_inference": True})


@when(parsers.parse('I create a task with the prompt "{prompt}"'))
def create_prompt_task(gateway: httpx.Client, session: Session, outcome: dict[str, Any], prompt: str) -> None:
    _create(gateway, session, outcome, {"prompt": prompt})


@then(parsers.parse('the task status becomes "{status}"'))
def task_status_becomes(gateway: httpx.Client, session: Session, outcome: dict[str, Any], status: str) -> None:
    task_id = outcome["task"]["id"]

    def finished() -> dict[str, Any] | None:
        result = gateway.get(f"/v1/tasks/{task_id}/result", headers=session.headers).json()
        return result if result["status"] in TERMINAL_TASK_STATUSES else None

    result = _wait(finished, 180, f"task {task_id} to finish")
    assert result["status"] == status, json.dumps(result, indent=2)
    outcome["result"] = result
    outcome["job"] = result["jobs"][-1]


@then(parsers.parse('the job ran on node "{slug}"'))
def job_ran_on(outcome: dict[str, Any], slug: str) -> None:
    assert outcome["job"]["node_slug"] == slug
    assert outcome["job"]["attempt"] == 1


@then(parsers.parse('the job result\'s stdout is "{stdout}" with exit code {code:d}'))
def job_stdout_is(outcome: dict[str, Any], stdout: str, code: int) -> None:
    result = outcome["job"]["result"]
    assert isinstance(result, dict), "the job result is a JSON object, not a string"
    assert result["stdout"] == stdout.encode().decode("unicode_escape")
    assert result["exit_code"] == code


@then(parsers.parse('the job result\'s stdout contains "{text}"'))
def job_stdout_contains(outcome: dict[str, Any], text: str) -> None:
    assert text in outcome["job"]["result"]["stdout"]


@then("the job result's stdout is the model's non-empty answer")
def job_stdout_is_answer(outcome: dict[str, Any]) -> None:
    result = outcome["job"]["result"]
    assert result["exit_code"] == 0, result["stderr"]
    assert result["stdout"].strip(), "the model answered nothing"


@then(parsers.parse('the job asked for inference and ran "{program}" rather than a shell'))
def job_ran_program(db: Any, outcome: dict[str, Any], program: str) -> None:
    row = db.execute("SELECT payload FROM jobs WHERE id = %s", (outcome["job"]["id"],)).fetchone()
    sandbox = row["payload"].get("sandbox", row["payload"])
    assert sandbox["use_inference"] is True
    assert sandbox["command"][0] == program
    assert "The capital of France is" not in " ".join(sandbox["command"]), "the prompt must travel in the env"
