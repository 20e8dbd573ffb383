"""The client commands of ``cynode``: ``login``, ``logout``, ``whoami`` and the ``task`` group.

Each command prints a short human summary, or with ``--json`` the gateway's answer as JSON. A
failed call exits 1 with the gateway's problem detail on stderr, never a traceback. Tokens are
never printed: they only travel between the gateway and the credentials file.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, ParamSpec, TypeVar, get_args

import click
import msgspec

from cynode.client.api import ClientError, GatewayClient, LoginRequired
from cynode.client.credentials import delete_credentials, load_credentials, save_credentials
from cynode.contracts.identity import UserResponse
from cynode.contracts.tasks import (
    TERMINAL_TASK_STATUSES,
    CancelTaskResponse,
    CreateTaskRequest,
    InputMode,
    LogStream,
    TaskListResponse,
    TaskLogsResponse,
    TaskResponse,
    TaskResultResponse,
    TaskStatus,
)

__all__ = ["client_commands"]

P = ParamSpec("P")
R = TypeVar("R")
Answer = TypeVar("Answer")

DEFAULT_GATEWAY_URL = "http://127.0.0.1:12080"
# Polling starts quick so short jobs return at once, then backs off to spare the gateway.
FIRST_POLL_SECONDS = 0.25
MAX_POLL_SECONDS = 2.0
# What coreutils timeout(1) exits with when time runs out, so scripts can tell it from a failed job.
WAIT_TIMED_OUT = 124

json_option = click.option("--json", "as_json", is_flag=True, help="Print the gateway's answer as JSON.")


def client_command(command: Callable[P, R]) -> Callable[P, R]:
    """Give a command `--json` and turn a failed call into `Error: <detail>` with exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ClientError as exc:
            raise click.ClickException(str(exc)) from exc

    return json_option(wrapper)


def echo_json(value: Any) -> None:
    click.echo(msgspec.json.format(msgspec.json.encode(value), indent=2))


def show_answer(as_json: bool, call: Callable[[GatewayClient], Answer], show_human: Callable[[Answer], None]) -> None:
    """Make one signed-in call and print its answer as JSON or for a human."""
    with signed_in() as client:
        answer = call(client)
    if as_json:
        echo_json(answer)
    else:
        show_human(answer)


@contextmanager
def signed_in() -> Iterator[GatewayClient]:
    """A client for the stored session that writes refreshed tokens back to the credentials file."""
    credentials = load_credentials()
    if credentials is None:
        raise LoginRequired()
    with GatewayClient(credentials.gateway_url, credentials, on_tokens=save_credentials) as client:
        yield client


def read_password() -> str:
    """From CYNODE_PASSWORD, a hidden prompt on a terminal, or the first line of piped stdin."""
    from_env = os.environ.get("CYNODE_PASSWORD")
    if from_env:
        return from_env
    if sys.stdin.isatty():
        password: str = click.prompt("Password", hide_input=True)
        return password
    return sys.stdin.readline().rstrip("\n")


@click.command()
@click.option("--gateway", "gateway_url", envvar="CYNODE_GATEWAY_URL", default=DEFAULT_GATEWAY_URL,
              show_default=True, help="User API base URL (or CYNODE_GATEWAY_URL).")  # fmt: skip
@click.option("--handle", required=True, help="Your user handle.")
@client_command
def login(gateway_url: str, handle: str, as_json: bool) -> None:
    """Log in and keep the session in the credentials file (password from CYNODE_PASSWORD or a prompt)."""
    with GatewayClient(gateway_url, on_tokens=save_credentials) as client:
        client.login(handle, read_password())
        user = client.me()
    if as_json:
        echo_json({"gateway_url": client.gateway_url, "user": user})
    else:
        click.echo(f"logged in to {client.gateway_url} as {user.handle}")


@click.command()
@client_command
def logout(as_json: bool) -> None:
    """End the session on the gateway and forget it locally."""
    credentials = load_credentials()
    if credentials is not None:
        try:
            # A session the gateway already ended (expired, revoked) is as logged out as can be.
            with suppress(LoginRequired), signed_in() as client:
                client.logout()
        finally:
            # A gateway that refuses or cannot be reached must not keep the user "logged in" here.
            delete_credentials()
    if as_json:
        echo_json({"logged_out": credentials is not None})
    else:
        click.echo("logged out" if credentials is not None else "not logged in")


@click.command()
@client_command
def whoami(as_json: bool) -> None:
    """Show the user of the stored session."""
    show_answer(as_json, GatewayClient.me, show_user)


def show_user(user: UserResponse) -> None:
    click.echo(f"{user.handle} ({'admin' if user.is_admin else 'user'}, id {user.id})")


@click.group()
def task() -> None:
    """Create, inspect and cancel tasks."""


@task.command("create")
@click.argument("prompt")
@click.option("--mode", "input_mode", type=click.Choice(get_args(InputMode)), default="prompt", show_default=True,
              help="prompt goes to the model; script and commands run in a sandbox.")  # fmt: skip
@click.option("--name", "task_name", help="A task name (unique per user); generated when omitted.")
@click.option("--wait", is_flag=True, help="Wait until the task finishes, print its output, exit with its code.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help=f"With --wait: give up after SECONDS and exit {WAIT_TIMED_OUT} (the task keeps going).")  # fmt: skip
@client_command
def create_task(
    prompt: str, input_mode: InputMode, task_name: str | None, wait: bool, timeout: float | None, as_json: bool
) -> None:
    """Submit PROMPT as a new task."""
    with signed_in() as client:
        created = client.create_task(CreateTaskRequest(prompt=prompt, input_mode=input_mode, task_name=task_name))
        if not wait:
            if as_json:
                echo_json(created)
            else:
                click.echo(f"created task {created.id} {created.task_name} ({created.status})")
            return
        result = wait_until_finished(client, str(created.id), timeout)
    if result.status not in TERMINAL_TASK_STATUSES:
        click.echo(f"task {result.task_id} is still {result.status} after {timeout:g} s", err=True)
        raise SystemExit(WAIT_TIMED_OUT)
    if as_json:
        echo_json(result)
    else:
        for job in result.jobs:
            if job.result is not None:
                echo_output(job.result)
        if result.status != "completed":
            reason = next((job.reason for job in reversed(result.jobs) if job.reason), None)
            click.echo(f"task {result.task_id} {result.status}" + (f" ({reason})" if reason else ""), err=True)
    raise SystemExit(exit_code_of(result))


def wait_until_finished(client: GatewayClient, task_ref: str, timeout: float | None) -> TaskResultResponse:
    """The task's result once it is terminal, or its last (unfinished) state when ``timeout`` passes."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = FIRST_POLL_SECONDS
    while True:
        result = client.result(task_ref)
        if result.status in TERMINAL_TASK_STATUSES:
            return result
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return result
            delay = min(delay, remaining)
        time.sleep(delay)
        delay = min(delay * 2, MAX_POLL_SECONDS)


def echo_output(job_result: dict[str, Any]) -> None:
    """A job's stdout to stdout and stderr to stderr, as the job wrote them."""
    for stream, to_stderr in (("stdout", False), ("stderr", True)):
        text = job_result.get(stream)
        if isinstance(text, str) and text:
            click.echo(text, nl=False, err=to_stderr)


def exit_code_of(result: TaskResultResponse) -> int:
    """The last job's exit code; 1 for a task that failed or was canceled without a non-zero code."""
    job_result = result.jobs[-1].result if result.jobs else None
    reported = job_result.get("exit_code") if job_result else None
    code = reported if isinstance(reported, int) and not isinstance(reported, bool) else None
    if result.status == "completed":
        return code if code is not None and code >= 0 else 0
    return code if code is not None and code > 0 else 1


@task.command("list")
@click.option("--status", type=click.Choice(get_args(TaskStatus)), help="Only tasks in this status.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many tasks.")
@client_command
def list_tasks(status: TaskStatus | None, limit: int | None, as_json: bool) -> None:
    """List your tasks, newest first."""
    show_answer(as_json, lambda client: client.list_tasks(status=status, limit=limit), show_task_page)


def show_task_page(page: TaskListResponse) -> None:
    for listed in page.tasks:
        click.echo(f"{listed.id}  {listed.status:<9}  {listed.created_at:%Y-%m-%d %H:%M:%S}  {listed.task_name}")
    if page.next_cursor:
        click.echo("(more tasks; raise --limit to see them)", err=True)


task_ref_argument = click.argument("task_ref", metavar="ID")


@task.command("get")
@task_ref_argument
@client_command
def get_task(task_ref: str, as_json: bool) -> None:
    """Show one task (by id or name)."""
    show_answer(as_json, lambda client: client.get_task(task_ref), show_task)


def show_task(found: TaskResponse) -> None:
    click.echo(f"id:       {found.id}\nname:     {found.task_name}\nstatus:   {found.status}")
    if found.reason:
        click.echo(f"reason:   {found.reason}")
    click.echo(f"created:  {found.created_at.isoformat()}\nupdated:  {found.updated_at.isoformat()}")
    click.echo(f"prompt:   {found.prompt}")
    if found.summary:
        click.echo(f"summary:  {found.summary}")


@task.command("result")
@task_ref_argument
@client_command
def task_result(task_ref: str, as_json: bool) -> None:
    """Show a task's status and each job's outcome and output."""
    show_answer(as_json, lambda client: client.result(task_ref), show_result)


def show_result(result: TaskResultResponse) -> None:
    click.echo(f"task {result.task_id}: {result.status}")
    for job in result.jobs:
        exit_code = job.result.get("exit_code") if job.result else None
        click.echo(f"job {job.id} attempt {job.attempt}: {job.status} on {job.node_slug or '-'}, exit code "
                   f"{'-' if exit_code is None else exit_code}")  # fmt: skip
        if job.reason:
            click.echo(f"reason: {job.reason}")
        if job.result is not None:
            echo_output(job.result)


@task.command("logs")
@task_ref_argument
@click.option("--stream", type=click.Choice(get_args(LogStream)), default="all", show_default=True)
@client_command
def task_logs(task_ref: str, stream: LogStream, as_json: bool) -> None:
    """Print a task's stdout (to stdout) and stderr (to stderr)."""
    show_answer(as_json, lambda client: client.logs(task_ref, stream), show_logs)


def show_logs(logs: TaskLogsResponse) -> None:
    echo_output({"stdout": logs.stdout, "stderr": logs.stderr})


@task.command("cancel")
@task_ref_argument
@client_command
def cancel_task(task_ref: str, as_json: bool) -> None:
    """Cancel a queued or running task."""
    show_answer(as_json, lambda client: client.cancel(task_ref), show_cancel)


def show_cancel(canceled: CancelTaskResponse) -> None:
    if canceled.canceled:
        click.echo(f"canceled task {canceled.task_id}")
    else:
        click.echo(f"task {canceled.task_id} already {canceled.status}")


client_commands: list[click.Command] = [login, logout, whoami, task]
