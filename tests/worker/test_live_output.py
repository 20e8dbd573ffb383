"""A running job's output so far, from the Worker API: ``GET /v1/worker/jobs/{id}/output``."""

from __future__ import annotations

import time
from typing import Any

import httpx

from cynode.worker.service import fresh_text
from tests.fixtures.podman import RunningWorker, WorkerFactory

from .test_api import AUTH, body, start_in_background


def output(
    worker: RunningWorker, job_id: str = "job-1", headers: dict[str, str] = AUTH, **query: Any
) -> httpx.Response:
    return worker.client().get(f"/v1/worker/jobs/{job_id}/output", params=query, headers=headers)


def output_until(worker: RunningWorker, wanted: str, **query: Any) -> dict[str, Any]:
    """Poll the stream until its text holds ``wanted`` (the job writes it while it runs)."""
    deadline = time.monotonic() + 60
    while True:
        answer = output(worker, **query)
        assert answer.status_code == 200, answer.text
        chunk: dict[str, Any] = answer.json()
        if wanted in chunk["data"]:
            return chunk
        assert time.monotonic() < deadline, f"{wanted!r} never showed up in {chunk}"
        time.sleep(0.1)


def test_output_arrives_while_the_job_runs_and_continues_from_its_offset(worker_factory: WorkerFactory) -> None:
    worker = worker_factory()
    script = "echo line1; echo oops >&2; printf 'nul\\000\\n'; sleep 600"
    thread, answers = start_in_background(worker, body(script))

    first = output_until(worker, "nul", stream="stdout", after=0)
    assert answers == [], "the job must still be running"
    assert first == {
        "version": 1,
        "job_id": "job-1",
        "stream": "stdout",
        "after": 0,
        "next_offset": len(b"line1\nnul\x00\n"),
        "data": "line1\nnul\ufffd\n",
        "truncated": False,
        "replaced": True,
    }
    rest = output(worker, stream="stdout", after=first["next_offset"])
    assert rest.json()["data"] == "", rest.text
    assert output(worker, stream="stdout", after=6).json()["data"] == "nul\ufffd\n"
    assert output_until(worker, "oops", stream="stderr")["data"] == "oops\n"

    worker.client().post("/v1/worker/jobs/job-1:cancel", headers=AUTH)
    thread.join(timeout=60)
    result = answers[0].json()
    assert result["stdout"] == first["data"]
    assert output(worker, stream="stdout").status_code == 404


def test_bad_requests_for_output_are_refused(worker_factory: WorkerFactory) -> None:
    worker = worker_factory(max_output_bytes=16)
    thread, answers = start_in_background(worker, body("head -c 100 /dev/zero | tr '\\0' a; sleep 600"))
    full = output_until(worker, "a" * 16, stream="stdout")
    assert (full["data"], full["next_offset"], full["truncated"]) == ("a" * 16, 16, True)

    refusals = {
        "no token": output(worker, headers={}, stream="stdout"),
        "wrong token": output(worker, headers={"Authorization": "Bearer wrong"}, stream="stdout"),
        "no stream": output(worker),
        "unknown stream": output(worker, stream="both"),
        "negative offset": output(worker, stream="stdout", after=-1),
        "not a number": output(worker, stream="stdout", after="1e3"),
        "past the limit": output(worker, stream="stdout", after=17),
        "past what was written": output(worker, stream="stderr", after=1),
        "unknown job": output(worker, job_id="job-2", stream="stdout"),
    }
    assert {why: answer.status_code for why, answer in refusals.items()} == {
        "no token": 401,
        "wrong token": 401,
        "no stream": 400,
        "unknown stream": 400,
        "negative offset": 400,
        "not a number": 400,
        "past the limit": 400,
        "past what was written": 400,
        "unknown job": 404,
    }
    assert all(answer.headers["content-type"].startswith("application/problem+json") for answer in refusals.values())

    worker.client().post("/v1/worker/jobs/job-1:cancel", headers=AUTH)
    thread.join(timeout=60)
    assert answers[0].json()["status"] == "failed"


def test_a_half_written_character_is_held_back_until_it_is_whole() -> None:
    written = "line café".encode()
    assert fresh_text(written[:-1], 0) == ("line caf", len(b"line caf"), False)
    assert fresh_text(written, len(b"line caf")) == ("é", len(written), False)
    assert fresh_text(b"ok\xff\n", 0) == ("ok\ufffd\n", 4, True)
