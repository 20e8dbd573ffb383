"""The client commands of ``cynode``: ``login``, ``logout``, ``whoami`` and the ``task`` group.

Each command prints a short human summary, or with ``--json`` the gateway's answer as JSON. A
failed call exits 1 with the gateway's problem detail on stderr, never a traceback. Tokens are
never printed: they only travel between the gateway and the credentials file. Text others wrote
(job output, prompts, summaries) is printed without terminal control sequences; ``--raw`` keeps
them in job output, for piping it somewhere that expects them.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any, ParamSpec, TextIO, TypeVar, get_args

import click
import msgspec

from cynode.client.api import ClientError, GatewayClient, LoginRequired
from cynode.client.credentials import delete_credentials, load_credentials, save_credentials
from cynode.client.progress import Progress
from cynode.client.terminal import terminal_safe
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
Client = TypeVar("Client", bound=GatewayClient)

DEFAULT_GATEWAY_URL = "http://127.0.0.1:12080"
# How long each --wait request asks the gateway to hold the answer (below the client's 30 s timeout).
LONG_POLL_SECONDS = 25.0
# What coreutils timeout(1) exits with when time runs out, so scripts can tell it from a failed job.
WAIT_TIMED_OUT = 124

json_option = click.option("--json", "as_json", is_flag=True, help="Print the gateway's answer as JSON.")
raw_option = click.option(
    "--raw", is_flag=True, help="Print job output as written, terminal control sequences included."
)


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
    print_answer(as_json, answer, show_human)


def print_answer(as_json: bool, answer: Answer, show_human: Callable[[Answer], None]) -> None:
    if as_json:
        echo_json(answer)
    else:
        show_human(answer)


def signed_in() -> AbstractContextManager[GatewayClient]:
    """A client for the stored session that writes refreshed tokens back to the credentials file."""
    return session_client(GatewayClient)


@contextmanager
def session_client(client_type: type[Client]) -> Iterator[Client]:
    """Like :func:`signed_in`, for a client class that speaks more of the API (e.g. the admin calls)."""
    credentials = load_credentials()
    if credentials is None:
        raise LoginRequired()
    client = client_type(credentials.gateway_url, credentials, on_tokens=save_credentials)
    with client:
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
@click.argument("prompt", required=False)
@click.option("--file", "source", type=click.File("r", encoding="utf-8"),
              help="Take the task text from this file ('-' for stdin); the mode defaults to script.")  # fmt: skip
@click.option("--mode", "input_mode", type=click.Choice(get_args(InputMode)),
              help="prompt goes to the model; script and commands run in a sandbox. [default: prompt, or script "
                   "with --file]")  # fmt: skip
@click.option("--name", "task_name", help="A task name (unique per user); generated when omitted.")
@click.option(
    "--use-inference", is_flag=True, help="Give a script or commands task the node's model (INFERENCE_PROXY_URL)."
)
@click.option("--wait", is_flag=True, help="Wait until the task finishes, print its output, exit with its code.")
@click.option("--follow", is_flag=True, help="Like --wait, streaming status changes and output as they arrive.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help=f"With --wait: give up after SECONDS and exit {WAIT_TIMED_OUT} (the task keeps going).")  # fmt: skip
@raw_option
@client_command
def create_task(prompt: str | None, source: TextIO | None, input_mode: InputMode | None, task_name: str | None,
                use_inference: bool, wait: bool, follow: bool, timeout: float | None, raw: bool,
                as_json: bool) -> None:  # fmt: skip
    """Submit PROMPT (or the text of --file) as a new task."""
    if source is not None and prompt is None:
        text = source.read()
    elif source is None and prompt is not None:
        text = prompt
    else:
        raise click.UsageError("give either PROMPT or --file")
    mode: InputMode = input_mode or ("prompt" if source is None else "script")
    if use_inference and mode == "prompt":
        raise click.UsageError("--use-inference is for script and commands tasks (prompt tasks always use the model)")
    request = CreateTaskRequest(prompt=text, input_mode=mode, task_name=task_name, use_inference=use_inference)
    with signed_in() as client:
        created = client.create_task(request)
        if not (wait or follow):
            if as_json:
                echo_json(created)
            else:
                click.echo(f"created task {created.id} {created.task_name} ({created.status})")
            return
        if follow and not as_json:
            result = follow_until_finished(client, str(created.id), timeout, raw=raw)
        else:
            label = f"task {created.task_name}"
            with Progress(sys.stderr, label, enabled=not as_json and sys.stderr.isatty()) as progress:
                result = wait_until_finished(client, str(created.id), timeout, progress.update)
    if result.status not in TERMINAL_TASK_STATUSES:
        click.echo(f"task {result.task_id} is still {result.status} after {timeout:g} s", err=True)
        raise SystemExit(WAIT_TIMED_OUT)
    if as_json:
        echo_json(result)
    else:
        if not follow:
            for job in result.jobs:
                if job.result is not None:
                    echo_output(job.result, raw=raw)
        if result.status != "completed":
            reason = next((job.reason for job in reversed(result.jobs) if job.reason), None)
            click.echo(f"task {result.task_id} {result.status}" + (f" ({reason})" if reason else ""), err=True)
    raise SystemExit(exit_code_of(result))


def wait_until_finished(
    client: GatewayClient, task_ref: str, timeout: float | None, on_status: Callable[[str], None] = lambda _: None
) -> TaskResultResponse:
    """The task's result once it is terminal, or its last (unfinished) state when ``timeout`` passes.

    Each request is a server long-poll: the gateway answers as soon as the task ends.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        remaining = LONG_POLL_SECONDS if deadline is None else min(LONG_POLL_SECONDS, deadline - time.monotonic())
        result = client.result(task_ref, wait=max(remaining, 0))
        on_status(result.status)
        if result.status in TERMINAL_TASK_STATUSES or (deadline is not None and time.monotonic() >= deadline):
            return result


def follow_until_finished(
    client: GatewayClient, task_ref: str, timeout: float | None, *, raw: bool
) -> TaskResultResponse:
    """Print status changes (stderr) and output as the log stream brings them, then the final result."""
    deadline = None if timeout is None else time.monotonic() + timeout
    for event in client.follow_logs(task_ref):
        kind = event.get("event")
        if kind == "status":
            click.echo(f"[{event.get('status')}]", err=True)
        elif kind in ("stdout", "stderr"):
            text = str(event.get("data", ""))
            click.echo(text if raw else terminal_safe(text), nl=False, err=kind == "stderr", color=raw or None)
        if deadline is not None and time.monotonic() >= deadline:
            break
    return client.result(task_ref)


def echo_output(job_result: dict[str, Any], *, raw: bool) -> None:
    """A job's stdout to stdout and stderr to stderr; as the job wrote them only when ``raw``."""
    for stream, to_stderr in (("stdout", False), ("stderr", True)):
        text = job_result.get(stream)
        if isinstance(text, str) and text:
            # color=True: click would otherwise drop colour codes itself when not writing to a terminal.
            click.echo(text if raw else terminal_safe(text), nl=False, err=to_stderr, color=raw or None)


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
    click.echo(f"prompt:   {terminal_safe(found.prompt)}")
    if found.summary:
        click.echo(f"summary:  {terminal_safe(found.summary)}")


@task.command("result")
@task_ref_argument
@raw_option
@client_command
def task_result(task_ref: str, raw: bool, as_json: bool) -> None:
    """Show a task's status and each job's outcome and output."""
    show_answer(as_json, lambda client: client.result(task_ref), functools.partial(show_result, raw=raw))


def show_result(result: TaskResultResponse, *, raw: bool) -> None:
    click.echo(f"task {result.task_id}: {result.status}")
    for job in result.jobs:
        exit_code = job.result.get("exit_code") if job.result else None
        click.echo(f"job {job.id} attempt {job.attempt}: {job.status} on {job.node_slug or '-'}, exit code "
                   f"{'-' if exit_code is None else exit_code}")  # fmt: skip
        if job.reason:
            click.echo(f"reason: {job.reason}")
        if job.result is not None:
            echo_output(job.result, raw=raw)


@task.command("logs")
@task_ref_argument
@click.option("--stream", type=click.Choice(get_args(LogStream)), default="all", show_default=True)
@raw_option
@client_command
def task_logs(task_ref: str, stream: LogStream, raw: bool, as_json: bool) -> None:
    """Print a task's stdout (to stdout) and stderr (to stderr)."""
    show_answer(as_json, lambda client: client.logs(task_ref, stream), functools.partial(show_logs, raw=raw))


def show_logs(logs: TaskLogsResponse, *, raw: bool) -> None:
    echo_output({"stdout": logs.stdout, "stderr": logs.stderr}, raw=raw)


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
