"""A pulled image is reported: an ``image_pull`` summary in the job's result (registry, the digest
the registry serves, layers, size, seconds) and ``[cynode]`` pull notes ahead of the job's stderr,
which a follower of the running job sees too. A present image is not pulled and reports no pull;
a pull token never shows."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cynode.sandbox.images import ImageSource, Registry
from tests.fixtures.cli import Cli, log_in
from tests.fixtures.deploy import LocalRegistry, RegistryAccount
from tests.fixtures.identity import ADMIN_HANDLE, ADMIN_PASSWORD
from tests.fixtures.nodemanager import NodeDeployment
from tests.fixtures.nodes import PSK_ENV
from tests.fixtures.podman import RunningWorker, WorkerFactory
from tests.fixtures.tasks import task_api
from tests.tasks.test_live_logs import follow
from tests.worker.test_api import AUTH, body, post_job, start_in_background
from tests.worker.test_live_output import output_until

_MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"


@dataclass(frozen=True)
class PushedImage:
    reference: str
    digest: str
    """What the registry answers for the reference's manifest (``Docker-Content-Digest``)."""

    def assert_pulled_in(self, result: dict[str, Any], registry: LocalRegistry) -> None:
        """``result`` (a job's) reports this image pulled from ``registry``, with the registry's digest."""
        pulled = result["image_pull"]
        assert (pulled["image"], pulled["registry"], pulled["digest"]) == (self.reference, registry.host, self.digest)
        assert pulled["layers"] >= 1
        assert pulled["size_bytes"] > 0
        assert pulled["seconds"] >= 0


PushImage = Callable[..., PushedImage]
"""``push(registry, account=None)``: a fresh image in ``registry`` that this host does not have."""


def _podman(*args: str) -> None:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"podman {' '.join(args)} failed: {done.stderr[-2000:]}"


@pytest.fixture
def pushed_image(tmp_path: Path, sandbox_image: str) -> Iterator[PushImage]:
    """Pushes an image of its own (the sandbox image plus a label, so podman stores it under one
    manifest only) to a registry, then removes it here: a node must pull it."""
    made: list[str] = []

    def push(registry: LocalRegistry, account: RegistryAccount | None = None) -> PushedImage:
        reference = registry.reference(f"pull-progress-{uuid.uuid4().hex[:10]}:1")
        context = tmp_path / f"image-{len(made)}"
        context.mkdir()
        (context / "Containerfile").write_text(f"FROM {sandbox_image}\nLABEL cynode.test.image={reference}\n")
        _podman("build", "--quiet", "--tag", reference, str(context))
        made.append(reference)
        credentials = ["--creds", f"{account.username}:{account.token}"] if account else []
        _podman("push", "--tls-verify=false", *credentials, reference, f"docker://{reference}")
        _podman("rmi", reference)
        name, _, tag = reference.removeprefix(f"{registry.host}/").partition(":")
        auth = (account.username, account.token) if account else None
        answer = httpx.head(
            f"{registry.url}/v2/{name}/manifests/{tag}", headers={"Accept": _MANIFEST_TYPES}, auth=auth, timeout=30
        )
        assert answer.status_code == 200, answer.text
        return PushedImage(reference, answer.headers["Docker-Content-Digest"])

    yield push
    for reference in made:
        subprocess.run(["podman", "rmi", "--force", reference], capture_output=True, check=False, timeout=120)


def _pulls_from(worker: RunningWorker, registry: Registry) -> RunningWorker:
    worker.service.set_image_source(ImageSource(registries=(registry,)))
    return worker


def test_a_pulled_image_is_summed_up_in_the_result_and_a_second_job_pulls_nothing(
    worker_factory: WorkerFactory, local_registry: LocalRegistry, pushed_image: PushImage
) -> None:
    image = pushed_image(local_registry)
    worker = _pulls_from(worker_factory(), Registry(local_registry.url))

    first = post_job(worker, body("echo ran", job_id="job-pulls", image=image.reference)).json()
    second = post_job(worker, body("echo ran", job_id="job-present", image=image.reference)).json()

    assert (first["status"], first["stdout"]) == ("completed", "ran\n"), first
    image.assert_pulled_in(first, local_registry)
    notes = first["stderr"].splitlines()
    assert notes[0] == f"[cynode] pulling image {image.reference} from {local_registry.host}"
    assert notes[-1].startswith(f"[cynode] pulled image {image.reference} from {local_registry.host} in ")
    assert image.digest in notes[-1]
    assert (second["status"], second["stdout"], second["stderr"]) == ("completed", "ran\n", ""), second
    assert "image_pull" not in second


def test_a_follower_sees_the_pull_notes_ahead_of_the_jobs_own_stderr(
    worker_factory: WorkerFactory, local_registry: LocalRegistry, pushed_image: PushImage
) -> None:
    image = pushed_image(local_registry)
    worker = _pulls_from(worker_factory(), Registry(local_registry.url))
    thread, answers = start_in_background(
        worker, body("echo started >&2; sleep 600", job_id="job-followed", image=image.reference)
    )

    live = output_until(worker, "started", job_id="job-followed", stream="stderr", after=0)
    worker.service.cancel_job("job-followed")
    thread.join(timeout=120)

    assert live["data"].startswith(f"[cynode] pulling image {image.reference} from {local_registry.host}\n")
    assert f"[cynode] pulled image {image.reference}" in live["data"]
    assert live["data"].rstrip().endswith("started")
    # The result's stderr continues what the follower was sent: the offsets stay valid.
    final = answers[0].json()
    assert final["stderr"].startswith(live["data"]), final["stderr"]
    assert final["image_pull"]["digest"] == image.digest


def test_a_pull_with_a_token_never_shows_it(
    worker_factory: WorkerFactory,
    login_registry: LocalRegistry,
    registry_account: RegistryAccount,
    pushed_image: PushImage,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    image = pushed_image(login_registry, registry_account)
    worker = _pulls_from(worker_factory(), Registry(login_registry.url, registry_account.token))
    thread, answers = start_in_background(
        worker, body("echo started >&2; sleep 600", job_id="job-login", image=image.reference)
    )
    live = output_until(worker, "started", job_id="job-login", stream="stderr", after=0)
    worker.service.cancel_job("job-login")
    thread.join(timeout=120)

    result = answers[0]
    assert result.json()["image_pull"]["registry"] == login_registry.host
    for shown in (result.text, live["data"], caplog.text):
        assert registry_account.token not in shown


def test_a_failed_pull_reports_no_pull_and_keeps_its_reason(
    worker_factory: WorkerFactory,
    login_registry: LocalRegistry,
    pushed_image: PushImage,
    registry_account: RegistryAccount,
) -> None:
    image = pushed_image(login_registry, registry_account)
    wrong = registry_account.token + "-wrong"
    worker = _pulls_from(worker_factory(), Registry(login_registry.url, wrong))

    answer = worker.client().post(
        "/v1/worker/jobs:run", json=body("echo never", job_id="job-refused", image=image.reference), headers=AUTH
    )

    result = answer.json()
    assert (result["status"], result["reason"]) == ("failed", "image_pull_failed"), result
    assert result["stderr"].startswith("image_pull_failed: "), result["stderr"]
    assert "image_pull" not in result
    assert wrong not in answer.text


def test_a_task_whose_image_is_pulled_shows_the_pull_in_its_result_and_followed_logs_without_the_token(
    node_deployment: NodeDeployment,
    login_registry: LocalRegistry,
    registry_account: RegistryAccount,
    pushed_image: PushImage,
    cli: Cli,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    image = pushed_image(login_registry, registry_account)
    node_deployment.orchestrator = node_deployment.stack_factory(
        "gateway,orchestrator",
        env={**PSK_ENV, "CYNODE_ADMIN_PASSWORD": ADMIN_PASSWORD},
        overrides={
            "control_plane.port": node_deployment.control_plane_port,
            "dispatch.sandbox_image": image.reference,
            "nodes.sandbox.registries": [login_registry.url],
            "nodes.sandbox.registry_token_files": {login_registry.url: str(registry_account.token_file)},
        },
    )
    node_deployment.start_node()
    node_deployment.wait_dispatchable(node_deployment.slugs[0])
    tasks = task_api(node_deployment.control_plane, ADMIN_HANDLE, ADMIN_PASSWORD)

    created = tasks.create("echo from the pulled image", input_mode="commands")
    events = follow(tasks, created["id"])
    result = tasks.get(f"/v1/tasks/{created['id']}/result")
    assert log_in(cli, node_deployment.control_plane).exit_code == 0
    shown_by_cli = cli("task", "result", created["id"])
    shown_by_cli_json = cli("task", "result", created["id"], "--json")

    assert events[-1] == {"event": "end", "status": "completed"}, events
    job = result.json()["jobs"][0]["result"]
    assert job["stdout"] == "from the pulled image\n"
    assert (job["image_pull"]["image"], job["image_pull"]["digest"]) == (image.reference, image.digest)
    followed_stderr = "".join(event["data"] for event in events if event["event"] == "stderr")
    assert followed_stderr == job["stderr"]
    assert followed_stderr.startswith(f"[cynode] pulling image {image.reference} from {login_registry.host}\n")
    assert f"[cynode] pulled image {image.reference} from {login_registry.host}" in shown_by_cli.output
    assert json.loads(shown_by_cli_json.stdout)["jobs"][0]["result"]["image_pull"] == job["image_pull"]
    for shown in (json.dumps(events), result.text, shown_by_cli.output, shown_by_cli_json.output, caplog.text):
        assert registry_account.token not in shown
