"""``cynode task create --wait`` end to end: the all-in-one stack with a real node and podman sandbox."""

from __future__ import annotations

from tests.client.conftest import Cli, log_in
from tests.fixtures.stack import RunningStack
from tests.fixtures.tasks import SANDBOX_NODE

NODE_READY_SECONDS = 120


def test_wait_prints_the_output_and_exits_with_the_job_code(cli: Cli, sandbox_all_in_one: RunningStack) -> None:
    assert log_in(cli, sandbox_all_in_one).exit_code == 0

    succeeded = cli("task", "create", "echo hi", "--mode", "commands", "--name", "greet", "--wait")
    failed = cli("task", "create", "echo oops >&2; exit 3", "--mode", "commands", "--wait")

    assert (succeeded.exit_code, succeeded.stdout, succeeded.stderr) == (0, "hi\n", "")
    assert failed.exit_code == 3
    assert failed.stderr.startswith("oops\n"), failed.stderr
    result = cli("task", "result", "greet")
    assert result.stdout.startswith("task ")
    assert ": completed\njob " in result.stdout
    assert result.stdout.endswith(f" on {SANDBOX_NODE}, exit code 0\nhi\n")
    assert cli("task", "logs", "greet").stdout == "hi\n"
