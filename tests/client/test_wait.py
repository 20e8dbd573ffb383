"""``cynode task create --wait`` end to end: the all-in-one stack with a real node and podman sandbox."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from cynode.settings import Role
from tests.client.conftest import Cli, log_in
from tests.fixtures.identity import IDENTITY_ENV
from tests.fixtures.stack import RunningStack, StackFactory

NODE_READY_SECONDS = 120


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def all_in_one(stack_factory: StackFactory, tmp_path: Path) -> RunningStack:
    """Every role in one process; the node needs the control plane's port up front in its YAML."""
    control_plane_port = free_port()
    node_yaml = tmp_path / "node.yaml"
    # Inference is off: a commands task needs only the sandbox, and the model would slow start-up.
    node_yaml.write_text(
        f"version: 1\norchestrator:\n  url: http://127.0.0.1:{control_plane_port}\n"
        "node:\n  id: cli-node\ninference:\n  mode: disabled\n"
    )
    running = stack_factory(
        "all", env=IDENTITY_ENV, overrides={"control_plane.port": control_plane_port, "node_config": str(node_yaml)}
    )
    worker = running.client(Role.NODE)
    deadline = time.monotonic() + NODE_READY_SECONDS
    while worker.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the node never became ready"
        time.sleep(0.25)
    return running


def test_wait_prints_the_output_and_exits_with_the_job_code(cli: Cli, all_in_one: RunningStack) -> None:
    assert log_in(cli, all_in_one).exit_code == 0

    succeeded = cli("task", "create", "echo hi", "--mode", "commands", "--name", "greet", "--wait")
    failed = cli("task", "create", "echo oops >&2; exit 3", "--mode", "commands", "--wait")

    assert (succeeded.exit_code, succeeded.stdout, succeeded.stderr) == (0, "hi\n", "")
    assert failed.exit_code == 3
    assert failed.stderr.startswith("oops\n"), failed.stderr
    result = cli("task", "result", "greet")
    assert result.stdout.startswith("task ")
    assert ": completed\njob " in result.stdout
    assert result.stdout.endswith(" on cli-node, exit code 0\nhi\n")
    assert cli("task", "logs", "greet").stdout == "hi\n"
