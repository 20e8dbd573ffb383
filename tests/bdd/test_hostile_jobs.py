"""Hostile jobs on the real all-in-one stack (gateway, orchestrator, node manager, Worker API,
podman sandbox, PostgreSQL), driven through the user API: features/worker_node/hostile_jobs.feature.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx
from podman import PodmanClient
from pytest_bdd import given, parsers, scenarios, then, when

from cynode.sandbox import PodmanService
from cynode.sandbox.profile import LABEL_JOB
from cynode.settings import Role
from tests.fixtures.identity import ADMIN_PASSWORD, IDENTITY_ENV, Session, login
from tests.fixtures.stack import RunningStack, StackFactory, start_all_in_one

scenarios("worker_node/hostile_jobs.feature")

MIB = 1024 * 1024
WORKSPACE_MB = 32
LOG_MB = 1
OUTPUT_LIMIT = 256 * 1024


class HostileScenario:
    def __init__(self, stack: RunningStack, podman_url: str, data_dir: Path) -> None:
        self.stack = stack
        self.podman_url = podman_url
        self.data_dir = data_dir
        self.gateway = stack.client(Role.GATEWAY)
        self.session: Session | None = None
        self.task: dict[str, Any] = {}
        self.since = time.time()
        self.used_before = 0

    def headers(self) -> dict[str, str]:
        assert self.session is not None
        return self.session.headers

    def create(self, command: str) -> dict[str, Any]:
        response = self.gateway.post(
            "/v1/tasks", json={"prompt": command, "input_mode": "commands"}, headers=self.headers()
        )
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def result(self, task_id: str) -> dict[str, Any]:
        response = self.gateway.get(f"/v1/tasks/{task_id}/result", headers=self.headers())
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait_terminal(self, task_id: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            result = self.result(task_id)
            if result["status"] in ("completed", "failed", "canceled"):
                return result
            assert time.monotonic() < deadline, f"task {task_id} still {result['status']} after {timeout} s"
            time.sleep(0.2)

    def job(self) -> dict[str, Any]:
        [job] = self.result(self.task["id"])["jobs"]
        return dict(job)


@given(parsers.parse('an all-in-one node "{slug}" with small per-job bounds'), target_fixture="hostile")
def all_in_one_node(
    stack_factory: StackFactory, podman_service: PodmanService, sandbox_image: str, tmp_path: Path, slug: str
) -> HostileScenario:
    bounds = (
        "inference:\n  mode: disabled\n"
        f"sandbox:\n  max_concurrency: 2\n  podman_socket: {podman_service.url}\n"
        f"  resources:\n    max_memory_mb: 256\n    max_pids: 64\n    max_workspace_mb: {WORKSPACE_MB}\n"
        f"    max_log_mb: {LOG_MB}\n"
    )
    stack = start_all_in_one(stack_factory, tmp_path, node_slug=slug, env=IDENTITY_ENV, node_yaml_extra=bounds)
    return HostileScenario(stack, podman_service.url, tmp_path)


@given(parsers.parse('I am logged in as "{handle}"'))
def logged_in(hostile: HostileScenario, handle: str) -> None:
    hostile.session = login(hostile.gateway, handle, ADMIN_PASSWORD)


@when(parsers.parse('I create a task in commands mode with "{command}"'))
def create_task(hostile: HostileScenario, command: str) -> None:
    hostile.used_before = disk_used_under(hostile.data_dir)
    hostile.since = time.time()
    hostile.task = hostile.create(command)


@then(parsers.parse("the task completes within {seconds:d} seconds"))
def task_completes(hostile: HostileScenario, seconds: int) -> None:
    result = hostile.wait_terminal(hostile.task["id"], seconds)
    assert result["status"] == "completed", result
    assert "reason" not in result["jobs"][0]


@then(parsers.parse('the task ends "{status}" with reason "{reason}" within {seconds:d} seconds'))
def task_ends_with_reason(hostile: HostileScenario, status: str, reason: str, seconds: int) -> None:
    result = hostile.wait_terminal(hostile.task["id"], seconds)
    [job] = result["jobs"]
    assert (result["status"], job["reason"], job["result"]["reason"]) == (status, reason, reason), result
    task = hostile.gateway.get(f"/v1/tasks/{hostile.task['id']}", headers=hostile.headers()).json()
    assert task["reason"] == reason


@then(parsers.parse('the job\'s stdout is "{stdout}" and says bytes were replaced'))
def stdout_replaced(hostile: HostileScenario, stdout: str) -> None:
    job = hostile.job()
    expected = stdout.encode().decode("unicode_escape")
    assert job["result"]["stdout"] == expected
    assert job["result"]["replaced"] == {"stdout": True, "stderr": False}


@then("the job's stdout is within the output limit and flagged truncated")
def stdout_truncated(hostile: HostileScenario) -> None:
    result = hostile.job()["result"]
    assert result["stdout"].startswith("y\n")
    assert len(result["stdout"].encode()) <= OUTPUT_LIMIT
    # Whether the log cap or the output limit dropped the rest, the result says output is missing.
    assert result["truncated"]["stdout"] is True


def disk_used_under(directory: Path) -> int:
    """Bytes of disk the files under ``directory`` take (what ``du`` counts); files the running node
    removes while they are counted count as nothing."""
    used = 0
    for parent, names, files in os.walk(directory):  # a directory gone meanwhile is skipped
        for name in names + files:
            with contextlib.suppress(FileNotFoundError):
                used += os.lstat(os.path.join(parent, name)).st_blocks * 512
    return used


@then("the node's disk use grew by no more than the workspace quota")
def disk_use_bounded(hostile: HostileScenario) -> None:
    # The node's own directories, not the host's free space: the test workers beside this one write
    # to the same disk meanwhile (a failed run saw 36 MB of theirs).
    grew = disk_used_under(hostile.data_dir) - hostile.used_before
    assert grew < WORKSPACE_MB * MIB


@then("the job's container log never grows past its cap while it runs")
def log_bounded(hostile: HostileScenario) -> None:
    largest = 0
    job_label = None
    deadline = time.monotonic() + 60
    with PodmanClient(base_url=hostile.podman_url) as client:
        while time.monotonic() < deadline:
            job_id = hostile.job()["id"] if hostile.result(hostile.task["id"])["jobs"] else None
            job_label = f"{LABEL_JOB}={job_id}"
            containers = client.containers.list(all=True, filters={"label": job_label}) if job_id else []
            if not containers and largest:
                break  # the job's container is gone
            for container in containers:
                try:
                    path = client.api.get(f"/containers/{container.id}/json").json()["HostConfig"]["LogConfig"]["Path"]
                    largest = max(largest, Path(path).stat().st_size)
                except (OSError, KeyError, ValueError):
                    continue
            time.sleep(0.2)
    assert job_label is not None
    assert MIB // 2 < largest <= LOG_MB * MIB + 64 * 1024, largest


@then("the job ran in exactly one container")
def exactly_one_container(hostile: HostileScenario) -> None:
    job_id = hostile.job()["id"]
    filters = json.dumps({"event": ["create"], "label": [f"{LABEL_JOB}={job_id}"]})
    with PodmanClient(base_url=hostile.podman_url) as client:
        response = client.api.get(
            "/events", params={"stream": False, "since": str(int(hostile.since) - 1), "filters": filters}
        )
        response.raise_for_status()
    created = [line for line in response.text.splitlines() if line.strip()]
    assert len(created) == 1, created
    assert hostile.job()["attempt"] == 1


@then(parsers.parse('the node is ready and a following "{command}" task completes'))
def node_still_serves(hostile: HostileScenario, command: str) -> None:
    assert httpx.get(hostile.stack.url(Role.NODE) + "/readyz", timeout=30).status_code == 200
    follower = hostile.create(command)
    result = hostile.wait_terminal(follower["id"], 60)
    assert result["status"] == "completed", result
    assert result["jobs"][0]["result"]["stdout"] == "ok\n"
