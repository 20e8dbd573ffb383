"""Drives ``cynode`` client commands in-process with click's runner, against a real gateway.

``cli`` runs one command line with a private ``XDG_CONFIG_HOME`` (so the credentials file lives in
the test's temp dir); ``logged_in`` has already logged the bootstrap admin in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cynode.cli import main
from cynode.settings import Role
from tests.fixtures.identity import ADMIN_HANDLE, ADMIN_PASSWORD
from tests.fixtures.stack import RunningStack

Cli = Callable[..., Result]


@pytest.fixture
def config_home(tmp_path: Path) -> Path:
    return tmp_path / "config"


@pytest.fixture
def cli(config_home: Path) -> Cli:
    def run(*args: str, input: str | None = None, env: Mapping[str, str] | None = None) -> Result:
        full_env = {"XDG_CONFIG_HOME": str(config_home), "CYNODE_PASSWORD": "", **(env or {})}
        return CliRunner().invoke(main, list(args), input=input, env=full_env, catch_exceptions=False)

    return run


def log_in(cli: Cli, running: RunningStack) -> Result:
    """The bootstrap admin logs in to `running`'s gateway, the password piped on stdin."""
    return cli("login", "--gateway", running.url(Role.GATEWAY), "--handle", ADMIN_HANDLE, input=ADMIN_PASSWORD + "\n")


@pytest.fixture
def logged_in(cli: Cli, gateway_stack: RunningStack) -> RunningStack:
    result = log_in(cli, gateway_stack)
    assert result.exit_code == 0, result.output
    return gateway_stack
