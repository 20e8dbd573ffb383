"""A node keeps each job's answer until an orchestrator acknowledges it, across worker restarts,
within its count, size and age bounds; a job id it runs or keeps never runs a second time."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cynode.contracts.worker import OutputTruncation, RunJobResponse
from cynode.worker.kept_results import KeptResults
from tests.fixtures.podman import WorkerFactory
from tests.worker.test_api import AUTH, body, post_job, start_in_background

# Prints a fresh random id: two runs of the same job could never print the same line.
ONCE = "cat /proc/sys/kernel/random/uuid"


def state_of(worker: Any, job_id: str = "job-1") -> dict[str, Any]:
    answer = worker.client().get(f"/v1/worker/jobs/{job_id}", headers=AUTH)
    assert answer.status_code == 200, answer.text
    state: dict[str, Any] = answer.json()
    return state


def ack(worker: Any, job_id: str = "job-1") -> bool:
    answer = worker.client().post(f"/v1/worker/jobs/{job_id}:ack", headers=AUTH)
    assert answer.status_code == 200, answer.text
    acknowledged: bool = answer.json()["acknowledged"]
    return acknowledged


def test_a_finished_jobs_answer_is_kept_until_acknowledged(worker_factory: WorkerFactory) -> None:
    worker = worker_factory()
    assert state_of(worker) == {"version": 1, "job_id": "job-1", "state": "unknown"}
    answer = post_job(worker, {**body(ONCE), "attempt": 2}).json()

    kept = state_of(worker)
    assert (kept["state"], kept["attempt"], kept["result"]) == ("finished", 2, answer)
    assert ack(worker) is True
    assert state_of(worker)["state"] == "unknown"
    assert ack(worker) is False  # acknowledging twice changes nothing


def test_a_kept_job_is_answered_again_without_running_again(worker_factory: WorkerFactory) -> None:
    worker = worker_factory()
    first = post_job(worker, body(ONCE)).json()
    since = time.time()
    again = post_job(worker, body(ONCE)).json()
    assert again == first
    assert worker.containers_created_since(since) == 0


def test_a_running_job_is_reported_running_and_a_second_call_joins_it(worker_factory: WorkerFactory) -> None:
    worker = worker_factory()
    thread, answers = start_in_background(worker, body(f"sleep 2; {ONCE}"))
    since = time.time()
    assert state_of(worker)["state"] == "running"
    joined = post_job(worker, body(ONCE)).json()
    thread.join(timeout=60)
    assert joined == answers[0].json()
    assert joined["status"] == "completed"
    assert worker.containers_created_since(since) == 0


def test_kept_answers_survive_a_worker_restart(worker_factory: WorkerFactory) -> None:
    first = worker_factory()
    answer = post_job(first, body(ONCE)).json()
    first.stop()
    second = worker_factory(owner=first.owner)  # the same node: same state directory
    assert state_of(second)["result"] == answer
    assert post_job(second, body(ONCE)).json() == answer


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/v1/worker/jobs/job-1", {}, 401),
        ("POST", "/v1/worker/jobs/job-1:ack", {}, 401),
        ("POST", "/v1/worker/jobs/job-1:ack", {"Authorization": "Bearer wrong"}, 401),
        ("POST", "/v1/worker/jobs/:ack", AUTH, 404),
    ],
)
def test_job_state_and_ack_need_the_token_and_a_job_id(
    worker_factory: WorkerFactory, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    worker = worker_factory()
    post_job(worker, body("true"))
    answer = worker.client().request(method, path, headers=headers)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert state_of(worker)["state"] == "finished"  # a refused call changed nothing


def response(job_id: str, stdout: str = "") -> RunJobResponse:
    now = datetime.now(UTC)
    return RunJobResponse(
        version=1,
        task_id="t",
        job_id=job_id,
        status="completed",
        exit_code=0,
        stdout=stdout,
        stderr="",
        started_at=now,
        ended_at=now,
        truncated=OutputTruncation(stdout=False, stderr=False),
    )


def test_the_oldest_results_go_when_the_count_is_exceeded(tmp_path: Path) -> None:
    kept = KeptResults(tmp_path, max_results=2)
    for job_id in ["a", "b", "c"]:
        kept.keep(1, response(job_id))
        time.sleep(0.01)  # distinct modification times: the age order is the keeping order
    assert kept.get("a") is None
    assert [kept.get(job_id) is not None for job_id in ["b", "c"]] == [True, True]


def test_the_oldest_results_go_when_the_byte_budget_is_exceeded(tmp_path: Path) -> None:
    kept = KeptResults(tmp_path, max_bytes=3000)
    kept.keep(1, response("old", "x" * 1000))
    time.sleep(0.01)
    kept.keep(1, response("middle", "x" * 1000))
    time.sleep(0.01)
    kept.keep(1, response("new", "x" * 1000))
    assert kept.get("old") is None
    assert kept.get("middle") is not None
    assert kept.get("new") is not None


def test_results_older_than_the_retention_time_are_dropped(tmp_path: Path) -> None:
    kept = KeptResults(tmp_path, retention_seconds=60)
    kept.keep(3, response("stale"))
    kept.keep(1, response("fresh"))
    stale_file = next(path for path in tmp_path.iterdir() if b'"stale"' in path.read_bytes())
    an_hour_ago = time.time() - 3600
    os.utime(stale_file, (an_hour_ago, an_hour_ago))
    assert kept.get("stale") is None
    assert not stale_file.exists()
    fresh = kept.get("fresh")
    assert fresh is not None
    assert fresh.attempt == 1


def test_an_unreadable_kept_file_is_dropped_not_served(tmp_path: Path) -> None:
    kept = KeptResults(tmp_path)
    kept.keep(1, response("job"))
    (only,) = tmp_path.iterdir()
    only.write_text("{not json")
    assert kept.get("job") is None
    assert not only.exists()
