"""The Worker API over HTTP with real containers: responses, refusals, readiness and lifecycle."""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from podman import PodmanClient

from cynode.sandbox.profile import LABEL_OWNER
from tests.fixtures.podman import WORKER_TOKEN, RunningWorker, WorkerFactory

AUTH = {"Authorization": f"Bearer {WORKER_TOKEN}"}


def body(script: str, job_id: str = "job-1", **sandbox: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "task_id": "task-1",
        "job_id": job_id,
        "sandbox": {"image": "", "command": ["sh", "-c", script], **sandbox},
    }


def post_job(worker: RunningWorker, payload: dict[str, Any], headers: dict[str, str] = AUTH) -> httpx.Response:
    return worker.client().post("/v1/worker/jobs:run", json=payload, headers=headers)


def start_in_background(
    worker: RunningWorker, payload: dict[str, Any]
) -> tuple[threading.Thread, list[httpx.Response]]:
    answers: list[httpx.Response] = []
    thread = threading.Thread(target=lambda: answers.append(post_job(worker, payload)), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not worker.running_containers():
        assert time.monotonic() < deadline, "the job's container never started"
        time.sleep(0.05)
    return thread, answers


def test_a_result_has_every_field_of_the_contract(worker_factory: WorkerFactory) -> None:
    answer = post_job(worker_factory(), body("echo hi"))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/json")
    result = answer.json()
    assert {
        key: result[key] for key in ("version", "task_id", "job_id", "status", "exit_code", "stdout", "stderr")
    } == {
        "version": 1,
        "task_id": "task-1",
        "job_id": "job-1",
        "status": "completed",
        "exit_code": 0,
        "stdout": "hi\n",
        "stderr": "",
    }
    assert result["truncated"] == {"stdout": False, "stderr": False}
    started, ended = (datetime.fromisoformat(result[key]) for key in ("started_at", "ended_at"))
    assert result["started_at"].endswith("Z")
    assert started <= ended


def test_a_body_not_declared_json_is_415_and_runs_nothing(worker_factory: WorkerFactory) -> None:
    worker = worker_factory()
    since = time.time()
    answer = worker.client().post(
        "/v1/worker/jobs:run",
        content=b'{"version": 1, "task_id": "t", "job_id": "j", "sandbox": {"image": "", "command": ["true"]}}',
        headers={**AUTH, "Content-Type": "text/plain"},
    )
    assert answer.status_code == 415
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert worker.containers_created_since(since) == 0


def test_job_dirs_are_removed_after_the_answer(worker_factory: WorkerFactory) -> None:
    worker = worker_factory()
    assert post_job(worker, body("touch /workspace/file")).json()["status"] == "completed"
    job_root = worker.service.settings.mount_root / "job-1"
    deadline = time.monotonic() + 10
    while job_root.exists():
        assert time.monotonic() < deadline, "the job's directories were never removed"
        time.sleep(0.05)


def test_the_token_never_reaches_logs_or_answers(
    worker_factory: WorkerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    worker = worker_factory()
    answers = [
        post_job(worker, body("echo $CYNODE_JOB_ID")),
        post_job(worker, body("true"), headers={"Authorization": "Bearer wrong"}),
        post_job(worker, body("true", job_id="..")),
        worker.client().post("/v1/worker/jobs/job-1:cancel", headers=AUTH),
    ]
    assert all(WORKER_TOKEN not in answer.text for answer in answers)
    assert caplog.records
    for record in caplog.records:
        assert WORKER_TOKEN not in record.getMessage()
        assert WORKER_TOKEN not in repr(vars(record))


def test_a_job_id_already_running_is_joined_not_started_again(worker_factory: WorkerFactory) -> None:
    worker = worker_factory()
    thread, answers = start_in_background(worker, body("sleep 600"))
    joined: list[httpx.Response] = []
    joiner = threading.Thread(target=lambda: joined.append(post_job(worker, body("true"))), daemon=True)
    joiner.start()
    worker.client().post("/v1/worker/jobs/job-1:cancel", headers=AUTH)
    thread.join(timeout=60)
    joiner.join(timeout=60)
    assert answers[0].json()["status"] == "failed"
    assert joined[0].json() == answers[0].json()  # the second call got the first run's answer


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/v1/worker/jobs/job-1:cancel", {}, 401),
        ("/v1/worker/jobs/job-1:pause", AUTH, 404),
        ("/v1/worker/jobs/:cancel", AUTH, 404),
    ],
)
def test_cancel_needs_the_token_and_the_cancel_action(
    worker_factory: WorkerFactory, path: str, headers: dict[str, str], status: int
) -> None:
    answer = worker_factory().client().post(path, headers=headers)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("application/problem+json")


def test_jobs_are_unavailable_until_config_is_applied(worker_factory: WorkerFactory) -> None:
    worker = worker_factory(configure=False)
    answer = post_job(worker, body("true"))
    assert answer.status_code == 503
    assert "Retry-After" in answer.headers
    worker.service.apply_config(bearer_token=WORKER_TOKEN)
    assert post_job(worker, body("true")).json()["status"] == "completed"
    assert worker.client().get("/readyz").text == "ready"


def test_readiness_names_a_missing_sandbox_image(worker_factory: WorkerFactory) -> None:
    answer = worker_factory(default_image="localhost/no-such-image:latest").client().get("/readyz")
    assert answer.status_code == 503
    assert "build-sandbox-image.sh" in answer.text


def test_readiness_names_an_unwritable_mount_root(worker_factory: WorkerFactory, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    answer = worker_factory(mount_root=blocker / "mounts").client().get("/readyz")
    assert answer.status_code == 503
    assert "not writable" in answer.text


def test_a_restarted_worker_sweeps_the_previous_runs_containers(
    worker_factory: WorkerFactory, podman_service: Any
) -> None:
    first = worker_factory()
    first.stop()
    # What a crash mid-job leaves behind: a running container labelled with this node as owner.
    with PodmanClient(base_url=podman_service.url) as client:
        client.containers.create(
            first.service.settings.default_image,
            command=["sleep", "600"],
            labels={LABEL_OWNER: first.service.container_owner},
        ).start()
    assert len(first.containers()) == 1
    second = worker_factory(owner=first.owner)
    assert second.containers() == []


def test_stopping_the_worker_ends_running_jobs_with_an_answer(worker_factory: WorkerFactory) -> None:
    worker = worker_factory()
    thread, answers = start_in_background(worker, body("sleep 600"))
    worker.call(worker.service.stop())
    thread.join(timeout=60)
    result = answers[0].json()
    assert (result["status"], result["exit_code"]) == ("failed", -1)
    assert "shutting down" in result["stderr"]
    assert worker.containers() == []
