"""Sandbox images a node lacks: pulled from the orchestrator's registries through the podman API,
refused before any pull when an allowlist (node or orchestrator: the stricter wins) says no, and a
registry that is down fails the job with ``image_pull_failed`` while the node stays ready."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from podman import PodmanClient

from cynode.nodes.dispatchable import DispatchableNode
from cynode.sandbox.images import ImageSource, Registry
from cynode.settings import SettingsError, load_settings
from tests.fixtures.deploy import LocalRegistry, RegistryAccount, untag
from tests.fixtures.nodemanager import NodeDeployment
from tests.fixtures.podman import WORKER_TOKEN, RunningWorker, WorkerFactory
from tests.fixtures.stack import free_port

AUTH = {"Authorization": f"Bearer {WORKER_TOKEN}"}


def _job(image: str, command: str) -> dict[str, Any]:
    job_id = f"job-{uuid.uuid4().hex[:10]}"
    sandbox = {"image": image, "command": ["sh", "-c", command], "timeout_seconds": 60}
    return {"version": 1, "task_id": f"task-{job_id}", "job_id": job_id, "sandbox": sandbox}


def _run(worker: RunningWorker, image: str, command: str = "echo pulled") -> httpx.Response:
    return worker.client().post("/v1/worker/jobs:run", json=_job(image, command), headers=AUTH)


def _run_on(node: DispatchableNode, image: str, command: str) -> httpx.Response:
    """As the dispatcher calls a registered node: its Worker API URL and bearer token."""
    headers = {"Authorization": f"Bearer {node.bearer_token()}"}
    url = f"{node.worker_api_target_url}/v1/worker/jobs:run"
    return httpx.post(url, json=_job(image, command), headers=headers, timeout=120)


def _present(worker: RunningWorker, image: str) -> bool:
    with PodmanClient(base_url=worker.podman_url) as client:
        return bool(client.images.exists(image))


def test_a_missing_image_from_the_orchestrators_registry_is_pulled_and_runs(
    worker_factory: WorkerFactory, local_registry: LocalRegistry
) -> None:
    image = local_registry.reference()
    untag(image)
    worker = worker_factory()
    worker.service.set_image_source(ImageSource(registries=(Registry(local_registry.url),)))
    try:
        response = _run(worker, image)
        assert response.status_code == 200, response.text
        assert (response.json()["status"], response.json()["stdout"]) == ("completed", "pulled\n")
        assert _present(worker, image)
    finally:
        untag(image)


def test_an_image_outside_an_allowlist_is_refused_before_any_pull(
    worker_factory: WorkerFactory, local_registry: LocalRegistry
) -> None:
    image = local_registry.reference()
    untag(image)
    worker = worker_factory(allowed_images=(f"{local_registry.host}/*",))
    registries = (Registry(local_registry.url),)
    for source, whose in (
        # the node's own list allows it, the orchestrator's does not: the stricter wins
        (ImageSource(node_allowed=(f"{local_registry.host}/*",), orchestrator_allowed=("docker.io/*",),
                     registries=registries), "orchestrator's"),
        (ImageSource(node_allowed=("localhost/*",), orchestrator_allowed=None, registries=registries), "node's"),
        (ImageSource(registries=registries, require_digest=True), "digest"),
    ):  # fmt: skip
        worker.service.set_image_source(source)
        response = _run(worker, image)
        assert response.status_code == 400, response.text
        assert response.json()["detail"].startswith("image_not_allowed: "), response.text
        assert whose in response.json()["detail"]
        assert not _present(worker, image), "nothing may be pulled for a refused image"


def test_a_registry_that_is_down_fails_the_job_and_the_node_stays_ready(
    worker_factory: WorkerFactory, local_registry: LocalRegistry
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    image = f"{down.removeprefix('http://')}/alpine-like:1"
    worker = worker_factory()
    token = "pull-token-that-must-not-leak"
    worker.service.set_image_source(ImageSource(registries=(Registry(down, token),)))

    response = _run(worker, image)

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "failed"
    assert result["stderr"].startswith("image_pull_failed: "), result
    assert token not in response.text
    assert worker.client().get("/readyz").status_code == 200
    worker.service.set_image_source(ImageSource(registries=(Registry(local_registry.url),)))
    assert _run(worker, "localhost/cynode-sandbox:latest").json()["status"] == "completed"


def test_a_registry_the_orchestrator_does_not_name_is_never_pulled_from(
    worker_factory: WorkerFactory, local_registry: LocalRegistry
) -> None:
    image = local_registry.reference()
    untag(image)
    worker = worker_factory()
    worker.service.set_image_source(ImageSource(registries=(Registry("https://registry.example"),)))

    result = _run(worker, image).json()

    assert result["status"] == "failed"
    assert "not among the orchestrator's sandbox registries" in result["stderr"]
    assert not _present(worker, image)


def test_the_orchestrators_registries_and_allowlist_reach_the_node_through_its_config(
    node_deployment: NodeDeployment, local_registry: LocalRegistry
) -> None:
    image = local_registry.reference()
    untag(image)
    node_deployment.orchestrator_overrides.update(
        {"nodes.sandbox.registries": [local_registry.url], "nodes.sandbox.allowed_images": [f"{local_registry.host}/*"]}
    )
    node_deployment.start_orchestrator()
    node_deployment.start_node()
    target = node_deployment.wait_dispatchable(node_deployment.slugs[0])
    try:
        pulled = _run_on(target, image, "echo via config")
        refused = _run_on(target, "localhost/cynode-sandbox:latest", "echo via config")
    finally:
        untag(image)
    assert pulled.status_code == 200, pulled.text
    assert pulled.json()["stdout"] == "via config\n"
    assert refused.status_code == 400
    assert "orchestrator's sandbox image allowlist" in refused.json()["detail"]


def test_an_unqualified_image_is_pulled_from_the_first_registry_that_has_it(
    worker_factory: WorkerFactory, local_registry: LocalRegistry
) -> None:
    empty = f"http://127.0.0.1:{free_port()}"  # ranked first, and down: the next registry is tried
    worker = worker_factory()
    worker.service.set_image_source(ImageSource(registries=(Registry(empty), Registry(local_registry.url))))
    try:
        response = _run(worker, "alpine-like:1")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "completed", response.json()["stderr"]
        assert _present(worker, "alpine-like:1")
    finally:
        untag("localhost/alpine-like:1")
        untag(local_registry.reference())


def test_the_orchestrators_pull_token_logs_the_node_in_and_never_shows(
    node_deployment: NodeDeployment,
    login_registry: LocalRegistry,
    registry_account: RegistryAccount,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    image = login_registry.reference()
    untag(image)
    node_deployment.orchestrator_overrides.update(
        {"nodes.sandbox.registries": [login_registry.url],
         "nodes.sandbox.registry_token_files": {login_registry.url: str(registry_account.token_file)}}
    )  # fmt: skip
    node_deployment.start_orchestrator()
    node_deployment.start_node()
    target = node_deployment.wait_dispatchable(node_deployment.slugs[0])
    try:
        response = _run_on(target, image, "echo logged in")
    finally:
        untag(image)
    assert response.status_code == 200, response.text
    assert response.json()["stdout"] == "logged in\n", response.json()["stderr"]
    assert registry_account.token not in response.text
    assert registry_account.token not in caplog.text


def test_a_refused_login_fails_the_pull_without_showing_the_token(
    worker_factory: WorkerFactory, login_registry: LocalRegistry, registry_account: RegistryAccount
) -> None:
    image = login_registry.reference()
    untag(image)
    worker = worker_factory()
    wrong = registry_account.token + "-wrong"
    worker.service.set_image_source(ImageSource(registries=(Registry(login_registry.url, wrong),)))

    result = _run(worker, image).json()

    assert result["status"] == "failed"
    assert result["stderr"].startswith("image_pull_failed: "), result["stderr"]
    assert wrong not in result["stderr"]
    assert not _present(worker, image)


@pytest.mark.parametrize(
    ("sandbox", "says"),
    [
        ({"registries": [], "registry_token_files": {"http://r:5000": "/etc/hosts"}}, "not in registries"),
        ({"registries": ["http://r:5000"], "registry_token_files": {"http://r:5000": "/nonexistent"}}, "readable"),
    ],
)
def test_registry_token_settings_that_cannot_work_are_refused(
    tmp_path: Path, sandbox: dict[str, Any], says: str
) -> None:
    with pytest.raises(SettingsError, match=f"nodes.sandbox.*{says}"):
        load_settings(env={}, overrides={"data_dir": str(tmp_path), "nodes.sandbox": sandbox})
