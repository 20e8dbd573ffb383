"""Exit statuses of the operator commands (user, node, settings, credentials, status, doctor, sandbox)
and of ``chat threads`` and ``chat show``.

A script can tell why a command failed without parsing its message:

====  ============================================================================
0     success
1     any other failure (a failed doctor check, a failed task, ...)
2     usage error (bad option or argument; from click)
3     not logged in, session refused (401) or not allowed (403)
4     not found (404)
5     conflict (409), e.g. a credential name that exists
6     the gateway refused the input (400, 413, 415, 422)
7     gateway unreachable or failing (no answer, 5xx)
124   ``--wait --timeout`` ran out before the task finished
====  ============================================================================
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from enum import IntEnum
from typing import NoReturn, ParamSpec, TypeVar

import click

from cynode.client.api import ClientError

P = ParamSpec("P")
R = TypeVar("R")


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1
    USAGE = 2
    AUTH = 3
    NOT_FOUND = 4
    CONFLICT = 5
    INVALID = 6
    UNAVAILABLE = 7
    TIMED_OUT = 124


def exit_code_for(error: ClientError) -> ExitCode:
    status = error.status
    if status is None or status >= 500:
        return ExitCode.UNAVAILABLE
    by_status = {401: ExitCode.AUTH, 403: ExitCode.AUTH, 404: ExitCode.NOT_FOUND, 409: ExitCode.CONFLICT}
    if status in by_status:
        return by_status[status]
    return ExitCode.INVALID if status in (400, 413, 415, 422) else ExitCode.FAILURE


def fail(message: str, exit_code: ExitCode) -> NoReturn:
    """Print ``Error: <message>`` on stderr and exit with ``exit_code``."""
    click.echo(f"Error: {message}", err=True)
    raise SystemExit(exit_code)


def exits_by_status(command: Callable[P, R]) -> Callable[P, R]:
    """Turn a failed gateway call into ``Error: <detail>`` and the exit status of its HTTP status."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ClientError as exc:
            fail(str(exc), exit_code_for(exc))

    return wrapper
