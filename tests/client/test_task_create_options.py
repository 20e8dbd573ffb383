"""``cynode task create --file/--use-inference/--wait/--follow`` against the real gateway and dispatcher.

The node is a scripted Worker API over real HTTP that records each job it is handed. The progress
test runs the real ``cynode`` command with its stderr on a pseudo-terminal.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cynode.client.exit_codes import ExitCode
from tests.fixtures.cli import Cli, log_in
from tests.fixtures.nodes import PM_MODEL
from tests.fixtures.stack import RunningStack, StackFactory
from tests.fixtures.tasks import FakeWorker, fake_node, start_task_stack

JOB_SECONDS = 0.6


@pytest.fixture
def stack(stack_factory: StackFactory, cli: Cli) -> RunningStack:
    running = start_task_stack(stack_factory)
    assert log_in(cli, running).exit_code == 0
    return running


@pytest.fixture
def node(stack: RunningStack, fake_worker_factory: Callable[..., FakeWorker]) -> FakeWorker:
    fake = fake_worker_factory(delay=JOB_SECONDS)
    # Serving a model, so jobs that use inference can be placed here too.
    fake_node(stack, fake, "recording", inference_running=True, available_models=[PM_MODEL])
    return fake


def test_file_becomes_a_script_task_and_use_inference_reaches_the_job(
    cli: Cli, node: FakeWorker, tmp_path: Path
) -> None:
    script = tmp_path / "build.sh"
    script.write_text("set -e\necho building\n")
    ran = cli("task", "create", "--file", str(script), "--use-inference", "--wait")
    assert ran.exit_code == 0, ran.output
    assert ran.stdout.startswith("ran ")
    [job] = node.runs
    assert job["sandbox"]["command"] == ["sh", "-c", "set -e\necho building\n"]
    assert job["sandbox"]["use_inference"] is True

    as_commands = cli("task", "create", "--file", str(script), "--mode", "commands", "--json")
    assert as_commands.exit_code == 0, as_commands.output
    assert json.loads(as_commands.stdout)["prompt"] == "set -e\necho building\n"


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["echo hi", "--file", "-"],
        ["say hi", "--use-inference"],
        ["--file", "/no/such/file"],
    ],
)
def test_create_usage_errors_exit_2_before_any_request(cli: Cli, stack: RunningStack, args: list[str]) -> None:
    result = cli("task", "create", *args)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert json.loads(cli("task", "list", "--json").stdout)["tasks"] == []


def test_follow_streams_status_and_output(cli: Cli, node: FakeWorker) -> None:
    result = cli("task", "create", "echo hi", "--mode", "commands", "--follow")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("ran ")
    assert result.stderr.splitlines()[-1] == "[completed]"


def _create_on_a_tty(config_home: Path, *args: str) -> tuple[int, str, str]:
    """Run ``cynode task create ARGS`` with stderr on a pseudo-terminal; (exit code, stdout, terminal text)."""
    controller, terminal = pty.openpty()
    env = {**os.environ, "XDG_CONFIG_HOME": str(config_home)}
    process = subprocess.Popen(
        [sys.executable, "-m", "cynode.cli", "task", "create", *args],
        stdout=subprocess.PIPE, stderr=terminal, stdin=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    os.close(terminal)
    stdout, _ = process.communicate(timeout=120)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(controller, 4096)
        except OSError:  # EIO once the terminal's last writer is gone
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    return process.returncode, stdout.decode(), seen.decode(errors="replace")


def test_wait_draws_progress_on_a_terminal_and_nothing_extra_with_json(config_home: Path, node: FakeWorker) -> None:
    code, stdout, terminal = _create_on_a_tty(config_home, "echo hi", "--mode", "commands", "--name", "tty", "--wait")
    assert code == 0
    assert stdout.startswith("ran ")
    # A spinner frame, the task, its status and the elapsed time, redrawn in place.
    assert re.search(r"\r\x1b\[2K[|/\\-] task tty: (queued|running|completed) \d+\.\ds", terminal), terminal

    code, stdout, terminal = _create_on_a_tty(config_home, "echo hi", "--mode", "commands", "--wait", "--json")
    assert code == 0
    assert json.loads(stdout)["status"] == "completed"
    assert terminal == ""
