"""The kill -9 drill: two orchestrator processes on one database, one killed outright while its jobs
run on a node; the other takes every one of them over, and no job runs twice on the node."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections import Counter
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from cynode.sandbox.profile import LABEL_JOB
from tests.bdd.test_split_deployment import _create, _finished, _gateway, _wait_dispatchable
from tests.fixtures.deploy import SplitDeployment
from tests.fixtures.identity import ADMIN_HANDLE, ADMIN_PASSWORD, login
from tests.fixtures.nodemanager import wait_until
from tests.fixtures.podman import container_creations
from tests.fixtures.serve import Serve

scenarios("e2e/orchestrator_takeover.feature")

# Short enough that the drill takes seconds, long enough for a loaded host to renew in time. The
# safety poll stays at its default: a takeover follows the lease's end, not the next poll.
SHORT_LEASES = {"dispatch.lease_seconds": "8", "dispatch.lease_renew_seconds": "2"}


@pytest.fixture
def drill() -> dict[str, Any]:
    return {"started_at": time.time()}


class LogTail:
    """Reads a process's JSON log lines as they come (so its pipe never fills up)."""

    def __init__(self, served: Serve) -> None:
        self.events: list[dict[str, Any]] = []
        assert served.process.stderr is not None
        self._stream = served.process.stderr
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self._stream:
            try:
                self.events.append(json.loads(line))
            except ValueError:
                continue

    def named(self, event: str) -> list[dict[str, Any]]:
        return [entry for entry in list(self.events) if entry.get("event") == event]


@given("a gateway process serving HTTPS")
def gateway_process(split_deployment: SplitDeployment) -> None:
    split_deployment.start_gateway()


@given("two orchestrator processes with short leases on the same database")
def two_orchestrators(split_deployment: SplitDeployment, drill: dict[str, Any]) -> None:
    split_deployment.start_orchestrator(settings=SHORT_LEASES)
    survivor = split_deployment.start_orchestrator(settings=SHORT_LEASES)
    drill["survivor_log"] = LogTail(survivor)


@given(parsers.parse('a node process "{slug}" with {slots:d} sandbox slots'))
def node_process(split_deployment: SplitDeployment, db: Any, slug: str, slots: int) -> None:
    split_deployment.start_node(slug, split_deployment.orchestrators[1], sandbox={"max_concurrency": slots})
    _wait_dispatchable(db, slug)


@given("I am logged in to the gateway as the admin")
def logged_in(split_deployment: SplitDeployment, drill: dict[str, Any]) -> None:
    drill["gateway"] = _gateway(split_deployment)
    drill["session"] = login(drill["gateway"], ADMIN_HANDLE, ADMIN_PASSWORD)


@when(parsers.parse("I create {count:d} tasks in commands mode that take between 2 and 10 seconds"))
def create_tasks(drill: dict[str, Any], count: int) -> None:
    for number in range(count):
        _create(drill, {"prompt": f"sleep {2 + number % 3 * 4}; echo task {number}", "input_mode": "commands"})


def _sent_by(db: Any, served: Serve) -> set[str]:
    """Running jobs whose run ``served`` sent to a node (its lease owner names its pid)."""
    rows = db.execute(
        "SELECT id FROM jobs WHERE status = 'running' AND run_sent_at IS NOT NULL AND lease_owner LIKE %s",
        (f"%:{served.process.pid}:%",),
    ).fetchall()
    return {str(row["id"]) for row in rows}


@when("the first orchestrator is killed with SIGKILL while it holds running jobs")
def kill_first(split_deployment: SplitDeployment, db: Any, drill: dict[str, Any]) -> None:
    victim = split_deployment.orchestrators[0]
    wait_until(lambda: len(_sent_by(db, victim)) >= 3, 120, "the first orchestrator to send some runs")
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait(timeout=30)
    drill["orphaned"] = _sent_by(db, victim)  # the process is gone: nothing renews these any more
    assert drill["orphaned"], "the first orchestrator's jobs ended before it was killed"


@then("every task completes")
def every_task_completes(drill: dict[str, Any]) -> None:
    for task_id in drill["tasks"]:
        finished = _finished(drill, task_id)
        assert [job["status"] for job in finished["jobs"]] == ["completed"]


def _containers_created_per_job(podman_url: str, owner: str, since: float) -> Counter[str]:
    return Counter(event["Actor"]["Attributes"][LABEL_JOB] for event in container_creations(podman_url, owner, since))


@then(parsers.parse('no job ran more than once on node "{slug}"'))
def each_job_once(split_deployment: SplitDeployment, db: Any, drill: dict[str, Any], slug: str) -> None:
    jobs = {str(row["id"]) for row in db.execute("SELECT id FROM jobs").fetchall()}
    created = _containers_created_per_job(split_deployment.podman_url, slug, drill["started_at"])
    # The node's runtime probes run containers too, under job ids no task has.
    assert {job: created[job] for job in jobs} == dict.fromkeys(jobs, 1)


@then("the surviving orchestrator took over every job the killed one had sent to the node")
def survivor_took_over(db: Any, drill: dict[str, Any]) -> None:
    log: LogTail = drill["survivor_log"]
    orphaned: set[str] = drill["orphaned"]

    def takeovers() -> list[dict[str, Any]] | None:
        entries = [entry for entry in log.named("job_taken_over") if entry["job_id"] in orphaned]
        return entries if {entry["job_id"] for entry in entries} == orphaned else None

    taken_over = wait_until(takeovers, 30, "the survivor to log a takeover of each orphaned job")
    found = {entry["job_id"]: entry["found"] for entry in taken_over}
    attempts = db.execute("SELECT id, attempt FROM jobs WHERE id = ANY(%s::uuid[])", (list(orphaned),))
    # A run the node finished or still ran is stored or adopted under its attempt; only a call the
    # kill cut off before the node got it ("unknown" there) is run again, as the next attempt.
    expected = {job_id: 2 if state == "unknown" else 1 for job_id, state in found.items()}
    assert {str(row["id"]): row["attempt"] for row in attempts.fetchall()} == expected, found
