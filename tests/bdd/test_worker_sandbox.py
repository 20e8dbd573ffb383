"""Acceptance: the Worker API running jobs in real podman containers (features/worker_node)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.fixtures.podman import TEST_MAX_PIDS, WORKER_TOKEN, RunningWorker, WorkerFactory

scenarios("worker_node/worker_node_sandbox_execution.feature", "worker_node/worker_sandbox_limits.feature")

TASK_ID = "bdd-task"
JOB_ID = "bdd-job"
BACKGROUND_JOB_ID = "bdd-background-job"
OUTPUT_LIMIT = 256 * 1024
PROBLEM_MEDIA_TYPE = "application/problem+json"

# Forks a classic bomb, lets it run into the pids limit, then counts the container's processes by
# listing /proc (counting must not need a fork of its own).
FORK_BOMB = """
import os, time
if os.fork() == 0:
    while True:
        try:
            os.fork()
        except OSError:
            time.sleep(0.01)
time.sleep(3)
print("processes", sum(name.isdigit() for name in os.listdir("/proc")))
"""


@dataclass
class BackgroundJob:
    job_id: str
    thread: threading.Thread
    response: httpx.Response | None = None


@dataclass
class Context:
    worker: RunningWorker | None = None
    response: httpx.Response | None = None
    sent_at: float = 0.0
    elapsed: float = 0.0
    background: BackgroundJob | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def current(self) -> RunningWorker:
        assert self.worker is not None, "no Worker API started in this scenario"
        return self.worker

    @property
    def answer(self) -> httpx.Response:
        assert self.response is not None, "no call was made in this scenario"
        return self.response

    def result(self) -> dict[str, Any]:
        assert self.answer.status_code == 200, self.answer.text
        body: dict[str, Any] = self.answer.json()
        return body


@pytest.fixture
def ctx() -> Context:
    return Context()


def job_body(command: str, *, job_id: str = JOB_ID, **sandbox: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "task_id": TASK_ID,
        "job_id": job_id,
        "sandbox": {"image": "", "command": ["sh", "-c", command], **sandbox},
    }


def send(ctx: Context, body: bytes | dict[str, Any], token: str | None = WORKER_TOKEN) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    ctx.sent_at = time.time()
    started = time.monotonic()
    ctx.response = ctx.current.client().post("/v1/worker/jobs:run", content=content, headers=headers)
    ctx.elapsed = time.monotonic() - started
    return ctx.response


def unescape(command: str) -> str:
    return command.replace('\\"', '"')


# Workers ---------------------------------------------------------------------------------------


@given("a running Worker API whose node config has been applied")
def configured_worker(ctx: Context, worker_factory: WorkerFactory) -> None:
    ctx.worker = worker_factory()


@given("a Worker API whose node config has not been applied")
def unconfigured_worker(ctx: Context, worker_factory: WorkerFactory) -> None:
    ctx.worker = worker_factory(configure=False)


@given(parsers.parse("a Worker API that runs at most {count:d} job at a time"))
def limited_worker(ctx: Context, worker_factory: WorkerFactory, count: int) -> None:
    ctx.worker = worker_factory(max_concurrency=count)


@given(parsers.parse("the node config limits jobs to {seconds:d} seconds"))
def config_timeout(ctx: Context, seconds: int) -> None:
    ctx.current.service.apply_config(bearer_token=WORKER_TOKEN, max_job_timeout_seconds=seconds)


@given(parsers.parse("the node config limits request bodies to {size:d} bytes"))
def config_body_limit(ctx: Context, size: int) -> None:
    ctx.current.service.apply_config(bearer_token=WORKER_TOKEN, max_request_bytes=size)


@given(parsers.parse('a job running "{command}" has started'))
def background_job(ctx: Context, command: str) -> None:
    worker = ctx.current
    background = BackgroundJob(BACKGROUND_JOB_ID, threading.Thread(target=lambda: None))

    def run() -> None:
        headers = {"Authorization": f"Bearer {WORKER_TOKEN}"}
        body = job_body(command, job_id=BACKGROUND_JOB_ID)
        background.response = worker.client().post("/v1/worker/jobs:run", json=body, headers=headers)

    background.thread = threading.Thread(target=run, daemon=True)
    background.thread.start()
    ctx.background = background
    deadline = time.monotonic() + 30
    while not worker.running_containers():
        assert time.monotonic() < deadline, "the background job's container never started"
        time.sleep(0.1)


# Calls -----------------------------------------------------------------------------------------


@when(parsers.re(r'a job running "(?P<command>.*)" is sent$'))
def send_job(ctx: Context, command: str) -> None:
    send(ctx, job_body(unescape(command)))


@when(parsers.parse('a job running "{command}" is sent without a bearer token'))
def send_without_token(ctx: Context, command: str) -> None:
    send(ctx, job_body(command), token=None)


@when(parsers.parse('a job running "{command}" is sent with the bearer token "{token}"'))
def send_with_token(ctx: Context, command: str, token: str) -> None:
    send(ctx, job_body(command), token=token)


@when(parsers.parse('a job running "{command}" is sent with network policy "{policy}"'))
def send_with_policy(ctx: Context, command: str, policy: str) -> None:
    send(ctx, job_body(command, network_policy=policy))


@when(parsers.parse('a job running "{command}" is sent with env "{assignments}"'))
def send_with_env(ctx: Context, command: str, assignments: str) -> None:
    env = dict(item.split("=", 1) for item in assignments.split(","))
    send(ctx, job_body(command, env=env))


@when(parsers.parse('a job running "{command}" is sent with a timeout of {seconds:d} seconds'))
def send_with_timeout(ctx: Context, command: str, seconds: int) -> None:
    send(ctx, job_body(command, timeout_seconds=seconds))


@when(parsers.parse('a job printing {count:d} ASCII bytes and then "{character}" is sent'))
def send_straddling(ctx: Context, count: int, character: str) -> None:
    script = f"import sys; sys.stdout.write('a' * {count} + {character!r} + 'tail')"
    send(ctx, {**job_body(""), "sandbox": {"image": "", "command": ["python3", "-c", script]}})


@when("a fork bomb job is sent")
def send_fork_bomb(ctx: Context) -> None:
    send(
        ctx, {**job_body(""), "sandbox": {"image": "", "command": ["python3", "-c", FORK_BOMB], "timeout_seconds": 60}}
    )


@when(parsers.parse("a job with job_id {literal} is sent"))
def send_job_id(ctx: Context, literal: str) -> None:
    send(ctx, job_body("echo should-not-run", job_id=json.loads(literal)))


@when("a job whose body is larger than 10 MiB is sent")
def send_oversized(ctx: Context) -> None:
    send(ctx, job_body("true", env={"PADDING": "x" * (10 * 1024 * 1024 + 1)}))


@when(parsers.parse("a job whose body is {size:d} bytes is sent"))
def send_sized(ctx: Context, size: int) -> None:
    body = job_body("true", env={"PADDING": ""})
    padding = size - len(json.dumps(body).encode())
    body["sandbox"]["env"]["PADDING"] = "x" * padding
    encoded = json.dumps(body).encode()
    assert len(encoded) == size
    send(ctx, encoded)


@when(parsers.parse("the raw body {body} is sent as a job"))
def send_raw(ctx: Context, body: str) -> None:
    send(ctx, body.encode())


@when("GET /readyz is called")
def get_readyz(ctx: Context) -> None:
    ctx.response = ctx.current.client().get("/readyz")


@when("that job is canceled")
def cancel_background(ctx: Context) -> None:
    assert ctx.background is not None
    cancel(ctx, ctx.background.job_id)


@when(parsers.parse('job "{job_id}" is canceled'))
def cancel(ctx: Context, job_id: str) -> None:
    ctx.response = ctx.current.client().post(
        f"/v1/worker/jobs/{job_id}:cancel", headers={"Authorization": f"Bearer {WORKER_TOKEN}"}
    )


# Outcomes --------------------------------------------------------------------------------------


@then(parsers.parse("the call fails with status {status:d} as a problem"))
def problem_status(ctx: Context, status: int) -> None:
    answer = ctx.answer
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(PROBLEM_MEDIA_TYPE)
    problem = answer.json()
    assert problem["status"] == status
    assert {"type", "title", "detail"} <= problem.keys()
    assert WORKER_TOKEN not in answer.text


@then(parsers.parse('the problem detail mentions "{text}"'))
def problem_detail(ctx: Context, text: str) -> None:
    assert text in ctx.answer.json()["detail"]


@then("no sandbox container was created")
def nothing_created(ctx: Context) -> None:
    assert ctx.current.containers_created_since(ctx.sent_at) == 0


@then("no sandbox container is left")
def nothing_left(ctx: Context) -> None:
    assert ctx.current.containers() == []


@then(parsers.parse('the job status is "{status}" with exit code {exit_code:d}'))
def status_and_exit_code(ctx: Context, status: str, exit_code: int) -> None:
    result = ctx.result()
    assert (result["status"], result["exit_code"]) == (status, exit_code), result
    assert result["task_id"] == TASK_ID
    assert result["job_id"] == JOB_ID


@then(parsers.parse('the job status is "{status}"'))
def job_status(ctx: Context, status: str) -> None:
    assert ctx.result()["status"] == status


@then(parsers.parse('the job stdout contains "{text}"'))
def stdout_contains(ctx: Context, text: str) -> None:
    assert text in ctx.result()["stdout"]


@then(parsers.parse('the job stdout does not contain "{text}"'))
def stdout_lacks(ctx: Context, text: str) -> None:
    assert text not in ctx.result()["stdout"]


@then(parsers.parse('the job stderr contains "{text}"'))
def stderr_contains(ctx: Context, text: str) -> None:
    assert text in ctx.result()["stderr"]


@then(parsers.parse("the job stdout is exactly {size:d} bytes of valid UTF-8"))
def stdout_size(ctx: Context, size: int) -> None:
    # httpx has already decoded the JSON string, so the text is valid UTF-8 if it re-encodes.
    assert len(ctx.result()["stdout"].encode("utf-8")) == size


@then("the job stdout does not end with a replacement character")
def no_replacement(ctx: Context) -> None:
    stdout = ctx.result()["stdout"]
    assert "\ufffd" not in stdout
    assert set(stdout) == {"a"}


@then(parsers.parse("the job {stream} is flagged as truncated"))
def flagged(ctx: Context, stream: str) -> None:
    assert ctx.result()["truncated"][stream] is True


@then(parsers.parse("the job {stream} is not flagged as truncated"))
def not_flagged(ctx: Context, stream: str) -> None:
    assert ctx.result()["truncated"][stream] is False


@then(parsers.parse("the call took less than {seconds:d} seconds"))
def took_less(ctx: Context, seconds: int) -> None:
    assert ctx.elapsed < seconds


@then("the job stdout shows every capability set empty")
def no_capabilities(ctx: Context) -> None:
    lines = dict(line.split(":\t") for line in ctx.result()["stdout"].splitlines())
    assert lines == {"CapPrm": "0" * 16, "CapEff": "0" * 16, "CapBnd": "0" * 16}


@then("the job stdout reports fewer forks than the process limit")
def fork_bomb_contained(ctx: Context) -> None:
    result = ctx.result()
    label, count = result["stdout"].split()
    assert label == "processes"
    assert 1 < int(count) <= TEST_MAX_PIDS, result


@then(parsers.parse('GET /healthz answers "{body}"'))
def healthz(ctx: Context, body: str) -> None:
    answer = ctx.current.client().get("/healthz")
    assert (answer.status_code, answer.text) == (200, body)


@then(parsers.parse('a job running "{command}" still completes'))
def still_completes(ctx: Context, command: str) -> None:
    # Another job: the same job id would be answered with the first job's kept result.
    send(ctx, job_body(command, job_id=f"{JOB_ID}-next"))
    assert ctx.result()["status"] == "completed"


@then(parsers.parse('the answer is status {status:d} with body "{body}"'))
def plain_answer(ctx: Context, status: int, body: str) -> None:
    assert (ctx.answer.status_code, ctx.answer.text) == (status, body)


@then(parsers.parse('the answer is status {status:d} with a reason mentioning "{text}"'))
def reason_answer(ctx: Context, status: int, text: str) -> None:
    assert ctx.answer.status_code == status
    assert text in ctx.answer.text


@then("the answer has a Retry-After header")
def retry_after(ctx: Context) -> None:
    assert int(ctx.answer.headers["retry-after"]) > 0


@then("the started job can still be canceled")
def background_cancels(ctx: Context) -> None:
    cancel_background(ctx)
    assert ctx.answer.json()["canceled"] is True
    job_ended_canceled(ctx, "failed", -1)


@then(parsers.parse("the cancel answer says {verdict}"))
def cancel_verdict(ctx: Context, verdict: str) -> None:
    answer = ctx.answer
    assert answer.status_code == 200, answer.text
    assert answer.json()["canceled"] is (verdict == "canceled")


@then(parsers.parse('the started job ends with status "{status}" and exit code {exit_code:d}'))
def job_ended_canceled(ctx: Context, status: str, exit_code: int) -> None:
    background = ctx.background
    assert background is not None
    background.thread.join(timeout=60)
    assert background.response is not None
    result = background.response.json()
    assert (result["status"], result["exit_code"]) == (status, exit_code), result
    ctx.extra["background_result"] = result


@then("its stderr notes that the job was canceled")
def canceled_note(ctx: Context) -> None:
    assert "job canceled" in ctx.extra["background_result"]["stderr"]
