"""A job's image pulled from the login registry and reported in its result, with every role a
``cynode serve`` process over TLS."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from tests.bdd import test_split_deployment as split
from tests.deploy.test_image_pull_progress import PushImage, pushed_image
from tests.fixtures.deploy import LocalRegistry, RegistryAccount, SplitDeployment
from tests.fixtures.nodemanager import write_yaml

__all__ = ["pushed_image"]  # the fixture, for this module's steps

scenarios("e2e/image_pull.feature")

# The split deployment's steps for the processes, the login and commands tasks serve this feature too.
given('lab certificates made by "cynode tls selfsigned"')(split.lab_certificates_made)
given(parsers.parse('a node process "{slug}" trusting the control plane by its CA file'))(split.node_by_ca)
given("I am logged in to the gateway as the admin")(split.logged_in)
when(parsers.parse('I create a task in commands mode with "{command}"'))(split.create_command_task)
then(parsers.parse('the task completes on node "{slug}" with stdout "{stdout}"'))(split.completes_with_stdout)


@pytest.fixture
def world() -> dict[str, Any]:
    return {}


@given("an image of its own in the login registry and not on this host")
def image_in_registry(
    pushed_image: PushImage, login_registry: LocalRegistry, registry_account: RegistryAccount, world: dict[str, Any]
) -> None:
    world["image"] = pushed_image(login_registry, registry_account)


@given("a gateway process serving HTTPS whose tasks run that image")
def gateway_choosing_the_image(split_deployment: SplitDeployment, world: dict[str, Any]) -> None:
    # The gateway picks a new task's sandbox image (dispatch.sandbox_image).
    gateway = split_deployment.start_gateway(["--set", f"dispatch.sandbox_image={world['image'].reference}"])
    assert gateway.url(gateway.gateway, "").startswith("https://")


@given("an orchestrator process whose nodes pull from that registry with its token")
def orchestrator_with_the_registry(
    split_deployment: SplitDeployment,
    login_registry: LocalRegistry,
    registry_account: RegistryAccount,
    world: dict[str, Any],
) -> None:
    sandbox = {"registries": [login_registry.url],
               "registry_token_files": {login_registry.url: str(registry_account.token_file)}}  # fmt: skip
    config = write_yaml(split_deployment.directory / "orchestrator.yaml", {"nodes": {"sandbox": sandbox}})
    split_deployment.start_orchestrator(extra_args=["--config", str(config)])


def _last_result(world: dict[str, Any]) -> dict[str, Any]:
    session = world["session"]
    task_id = world["tasks"][-1]
    body: dict[str, Any] = world["gateway"].get(f"/v1/tasks/{task_id}/result", headers=session.headers).json()
    result: dict[str, Any] = body["jobs"][-1]["result"]
    return result


@then("its result reports the image pulled from that registry with the registry's digest")
def reports_the_pull(world: dict[str, Any], login_registry: LocalRegistry) -> None:
    world["image"].assert_pulled_in(_last_result(world), login_registry)


@then("its stderr starts with the node's notes on pulling that image")
def stderr_notes(world: dict[str, Any], login_registry: LocalRegistry) -> None:
    lines = _last_result(world)["stderr"].splitlines()
    reference = world["image"].reference
    assert lines[0] == f"[cynode] pulling image {reference} from {login_registry.host}", lines
    assert any(line.startswith(f"[cynode] pulled image {reference} from ") for line in lines), lines


@then("its result reports no image pull")
def reports_no_pull(world: dict[str, Any]) -> None:
    result = _last_result(world)
    assert "image_pull" not in result
    assert result["stderr"] == ""


@then("the registry's token shows in no task result")
def token_hidden(world: dict[str, Any], registry_account: RegistryAccount) -> None:
    session = world["session"]
    for task_id in world["tasks"]:
        answer = world["gateway"].get(f"/v1/tasks/{task_id}/result", headers=session.headers)
        assert registry_account.token not in json.dumps(answer.json())
