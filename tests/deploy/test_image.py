"""The CyNode image: built offline from the wheel on a local base, every command in its help, and
the orchestrator and gateway roles served from it against a database given by URL. Containers run
through podman's Docker API with testcontainers, as a deployment tool would drive them."""

from __future__ import annotations

import re
import time

import click
import httpx
import pytest
from testcontainers.core.container import DockerContainer

from cynode.cli import main
from cynode.sandbox import PodmanService
from tests.fixtures.deploy import image_container, tcp_database_url
from tests.fixtures.identity import ADMIN_HANDLE, ADMIN_PASSWORD, login
from tests.fixtures.nodes import PSK_ENV
from tests.fixtures.stack import free_port


def _finished_output(podman_url: str, image: str, command: list[str]) -> tuple[int, str]:
    container = image_container(podman_url, image, command)
    container.start()
    try:
        status = container.get_wrapped_container().wait(timeout=120)
        stdout, stderr = container.get_logs()
    finally:
        container.stop()
    return status["StatusCode"], (stdout + stderr).decode()


def test_the_image_help_lists_every_command(cynode_image: str, podman_service: PodmanService) -> None:
    code, output = _finished_output(podman_service.url, cynode_image, ["--help"])
    assert code == 0, output
    commands = main.list_commands(click.Context(main))
    assert {"serve", "migrate", "tls"} <= set(commands)
    missing = [name for name in commands if not re.search(rf"^\s+{re.escape(name)}\s", output, re.MULTILINE)]
    assert not missing, f"missing from the image's help: {missing}\n{output}"


def test_the_image_serves_orchestrator_and_gateway_against_a_database_url(
    cynode_image: str, podman_service: PodmanService, fresh_dsn: str
) -> None:
    gateway, control_plane = free_port(), free_port()
    with tcp_database_url(fresh_dsn) as database_url:
        container = image_container(
            podman_service.url,
            cynode_image,
            ["serve", "--role=orchestrator,gateway", "--database-url", database_url,
             "--set", f"gateway.port={gateway}", "--set", f"control_plane.port={control_plane}"],
            env={"CYNODE_ADMIN_PASSWORD": ADMIN_PASSWORD, **PSK_ENV},
            network_mode="host",
        )  # fmt: skip
        stderr = _serve_and_log_in(container, gateway, control_plane)
    assert b'"listener_without_tls"' in stderr, "serving 0.0.0.0 without TLS must warn"


def _serve_and_log_in(container: DockerContainer, gateway: int, control_plane: int) -> bytes:
    """Wait for both roles, log in as the bootstrap admin, list tasks; the container's stderr."""
    container.start()
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if all(httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
                       for port in (gateway, control_plane)):  # fmt: skip
                    break
            except httpx.TransportError:
                pass
            wrapped = container.get_wrapped_container()
            wrapped.reload()
            if wrapped.status != "running" or time.monotonic() > deadline:
                pytest.fail(f"the image never served both roles:\n{container.get_logs()[1].decode()[-3000:]}")
            time.sleep(0.3)
        with httpx.Client(base_url=f"http://127.0.0.1:{gateway}") as client:
            session = login(client, ADMIN_HANDLE, ADMIN_PASSWORD)
            assert client.get("/v1/tasks", headers=session.headers).status_code == 200
        return container.get_logs()[1]
    finally:
        container.stop()
