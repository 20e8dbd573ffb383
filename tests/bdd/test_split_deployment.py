"""Split deployment: gateway, orchestrators and nodes as separate ``cynode serve`` processes on
loopback, talking only HTTPS, driven only through the user API and observed through the database."""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from cynode.contracts.tasks import TERMINAL_TASK_STATUSES
from cynode.inference.settings import default_model_path
from cynode.tls import LabCertificates
from tests.fixtures.deploy import SplitDeployment, non_loopback_address
from tests.fixtures.identity import ADMIN_HANDLE, ADMIN_PASSWORD, Session, login
from tests.fixtures.inference import MODEL_ALIAS, MODEL_PATH_ENV
from tests.fixtures.nodemanager import wait_until
from tests.fixtures.serve import Serve

scenarios("e2e/split_deployment.feature")

ONE_JOB_AT_A_TIME = {"sandbox": {"max_concurrency": 1}}


@pytest.fixture
def world() -> dict[str, Any]:
    return {}


def _gateway(split_deployment: SplitDeployment) -> httpx.Client:
    assert split_deployment.gateway is not None, "start the gateway first"
    return httpx.Client(base_url=split_deployment.gateway.url(split_deployment.gateway.gateway, ""),
                        verify=split_deployment.trust, timeout=30)  # fmt: skip


@given('lab certificates made by "cynode tls selfsigned"')
def lab_certificates_made(lab_certificates: LabCertificates) -> None:
    assert lab_certificates.ca_cert.is_file()
    assert lab_certificates.server_key.stat().st_mode & 0o077 == 0, "the server key is readable by others"


@given("a gateway process serving HTTPS")
def gateway_process(split_deployment: SplitDeployment) -> None:
    gateway = split_deployment.start_gateway()
    assert gateway.url(gateway.gateway, "").startswith("https://")


@given("an orchestrator process serving HTTPS")
def orchestrator_process(split_deployment: SplitDeployment) -> None:
    split_deployment.start_orchestrator()


@given("an orchestrator process that pins Worker APIs to another certificate")
def orchestrator_pinning_a_stranger(split_deployment: SplitDeployment, stranger_certificates: LabCertificates) -> None:
    split_deployment.start_orchestrator(worker_api_pin=stranger_certificates.server_pin)


@given("two orchestrator processes serving HTTPS on the same database")
def two_orchestrators(split_deployment: SplitDeployment) -> None:
    split_deployment.start_orchestrator()
    split_deployment.start_orchestrator()
    assert len({served.control_plane for served in split_deployment.orchestrators}) == 2


def _wait_dispatchable(db: Any, slug: str, scheme: str = "https") -> None:
    def applied() -> bool:
        row = db.execute(
            "SELECT config_ack_status, config_ack_version, config_version, worker_api_target_url FROM nodes "
            "WHERE node_slug = %s",
            (slug,),
        ).fetchone()
        return bool(
            row and row["config_ack_status"] == "applied" and row["config_ack_version"] == row["config_version"]
        )

    wait_until(applied, 90, f"node {slug} to register and apply its config")
    row = db.execute("SELECT worker_api_target_url FROM nodes WHERE node_slug = %s", (slug,)).fetchone()
    assert row["worker_api_target_url"].startswith(f"{scheme}://"), row


@given(parsers.parse('a node process "{slug}" trusting the control plane by its CA file'))
def node_by_ca(split_deployment: SplitDeployment, db: Any, slug: str) -> None:
    split_deployment.start_node(slug, split_deployment.orchestrators[0])
    _wait_dispatchable(db, slug)


@given(parsers.parse('a node process "{slug}" with a model, trusting the control plane by its CA file'))
def node_with_model(split_deployment: SplitDeployment, db: Any, slug: str) -> None:
    model = os.environ.get(MODEL_PATH_ENV) or str(default_model_path())
    inference = {"mode": "allow", "backend": "embedded", "embedded_model_path": model,
                 "embedded_model_alias": MODEL_ALIAS}  # fmt: skip
    split_deployment.start_node(slug, split_deployment.orchestrators[0], inference=inference)
    _wait_dispatchable(db, slug)


@given(parsers.parse('a node process "{slug}" registered with the {which} orchestrator, one job at a time'))
def node_per_orchestrator(split_deployment: SplitDeployment, db: Any, slug: str, which: str) -> None:
    orchestrator = split_deployment.orchestrators[{"first": 0, "second": 1}[which]]
    split_deployment.start_node(slug, orchestrator, **ONE_JOB_AT_A_TIME)
    _wait_dispatchable(db, slug)


@given("I am logged in to the gateway as the admin")
def logged_in(split_deployment: SplitDeployment, world: dict[str, Any]) -> None:
    world["gateway"] = _gateway(split_deployment)
    world["session"] = login(world["gateway"], ADMIN_HANDLE, ADMIN_PASSWORD)


def _create(world: dict[str, Any], body: dict[str, Any]) -> str:
    session: Session = world["session"]
    response = world["gateway"].post("/v1/tasks", json=body, headers=session.headers)
    assert response.status_code == 201, response.text
    task_id: str = response.json()["id"]
    world.setdefault("tasks", []).append(task_id)
    return task_id


@when(parsers.parse('I create a task in commands mode with "{command}"'))
def create_command_task(world: dict[str, Any], command: str) -> None:
    _create(world, {"prompt": command, "input_mode": "commands"})


@when(parsers.parse('I create a task with the prompt "{prompt}"'))
def create_prompt_task(world: dict[str, Any], prompt: str) -> None:
    _create(world, {"prompt": prompt})


@when(parsers.parse("I create {count:d} tasks in commands mode that each take a second"))
def create_many(world: dict[str, Any], count: int) -> None:
    for number in range(count):
        _create(world, {"prompt": f"sleep 1; echo task {number}", "input_mode": "commands"})


def _finished(world: dict[str, Any], task_id: str, status: str = "completed") -> dict[str, Any]:
    session: Session = world["session"]

    def result() -> dict[str, Any] | None:
        body: dict[str, Any] = world["gateway"].get(f"/v1/tasks/{task_id}/result", headers=session.headers).json()
        return body if body["status"] in TERMINAL_TASK_STATUSES else None

    finished: dict[str, Any] = wait_until(result, 180, f"task {task_id} to finish", interval=0.25)
    assert finished["status"] == status, json.dumps(finished, indent=2)
    return finished


@then(parsers.parse('the task completes on node "{slug}" with stdout "{stdout}"'))
def completes_with_stdout(world: dict[str, Any], slug: str, stdout: str) -> None:
    job = _finished(world, world["tasks"][-1])["jobs"][-1]
    assert job["node_slug"] == slug
    assert job["result"]["stdout"] == stdout.encode().decode("unicode_escape")


@then(parsers.parse('the task completes on node "{slug}" with the model\'s non-empty answer'))
def completes_with_answer(world: dict[str, Any], slug: str) -> None:
    job = _finished(world, world["tasks"][-1])["jobs"][-1]
    assert job["node_slug"] == slug
    assert job["result"]["exit_code"] == 0, job["result"]["stderr"]
    assert job["result"]["stdout"].strip(), "the model answered nothing"


@then("the task fails naming the Worker API's pin mismatch")
def fails_on_pin(world: dict[str, Any], stranger_certificates: LabCertificates) -> None:
    job = _finished(world, world["tasks"][-1], status="failed")["jobs"][-1]
    error = job["result"]["error"]
    assert "certificate pin mismatch" in error, job
    assert stranger_certificates.server_pin in error


@then("every listener refuses plain HTTP")
def no_clear_text(split_deployment: SplitDeployment) -> None:
    ports = [port for served in split_deployment.processes for port in served.ports]
    assert len(ports) == 3
    for port in ports:
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)


@when(parsers.parse('a node process "{slug}" starts pinned to another certificate'))
def pinned_node(
    split_deployment: SplitDeployment, stranger_certificates: LabCertificates, world: dict[str, Any], slug: str
) -> None:
    tls = {"tls": {"pinned_sha256": stranger_certificates.server_pin}}
    world["node"] = split_deployment.launch_node(slug, split_deployment.orchestrators[0], orchestrator=tls)
    world["expected_pin"] = stranger_certificates.server_pin


@then("the node process exits naming the pin mismatch")
def node_exits_on_mismatch(lab_certificates: LabCertificates, world: dict[str, Any]) -> None:
    node: Serve = world["node"]
    node.process.wait(timeout=60)
    stderr = node.process.stderr.read() if node.process.stderr else ""
    assert node.process.returncode != 0
    assert "certificate pin mismatch" in stderr, stderr[-2000:]
    assert world["expected_pin"] in stderr
    assert lab_certificates.server_pin in stderr, "the message names the certificate actually presented"


@then(parsers.parse('node "{slug}" never registered'))
def never_registered(db: Any, slug: str) -> None:
    assert db.execute("SELECT 1 FROM nodes WHERE node_slug = %s", (slug,)).fetchone() is None


@given(parsers.parse('a node process "{slug}" whose Worker API listens on every interface without TLS'))
def plain_node(split_deployment: SplitDeployment, db: Any, world: dict[str, Any], slug: str) -> None:
    world["node"] = split_deployment.start_node(
        slug, split_deployment.orchestrators[0], tls=False, worker_api={"listen_host": "0.0.0.0"}
    )
    _wait_dispatchable(db, slug, scheme="http")


@then("a Worker API call from this host's non-loopback address is refused for lack of TLS")
def remote_call_refused(world: dict[str, Any]) -> None:
    node: Serve = world["node"]
    response = httpx.post(f"http://{non_loopback_address()}:{node.worker}/v1/worker/jobs:run", json={}, timeout=10)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert "TLS" in response.json()["detail"]


@then("a Worker API call from loopback is answered")
def loopback_call_answered(world: dict[str, Any]) -> None:
    node: Serve = world["node"]
    response = httpx.post(f"http://127.0.0.1:{node.worker}/v1/worker/jobs:run", json={}, timeout=10)
    assert response.status_code == 401, response.text  # reached the Worker API, which wants its token


@then("the node process warned at start-up that its Worker API listens without TLS")
def warned(world: dict[str, Any]) -> None:
    node: Serve = world["node"]
    _, stderr = node.terminate()
    warnings = [json.loads(line) for line in stderr.splitlines() if '"listener_without_tls"' in line]
    assert warnings, stderr[-2000:]
    assert warnings[0]["level"] == "warning"
    assert warnings[0]["listener"] == "worker_api"


@then("every task completes with exactly one job attempt")
def each_once(world: dict[str, Any]) -> None:
    world["nodes_used"] = set()
    for task_id in world["tasks"]:
        jobs = _finished(world, task_id)["jobs"]
        assert [job["attempt"] for job in jobs] == [1], jobs
        world["nodes_used"].add(jobs[0]["node_slug"])


@then("the tasks ran on both nodes")
def both_nodes(world: dict[str, Any]) -> None:
    assert world["nodes_used"] == {"split-node-a", "split-node-b"}
