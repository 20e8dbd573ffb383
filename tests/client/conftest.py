"""Client command tests: ``cli`` (tests.fixtures.cli) plus ``logged_in``, the bootstrap admin's session."""

from __future__ import annotations

import pytest

from tests.fixtures.cli import Cli, log_in
from tests.fixtures.stack import RunningStack

__all__ = ["Cli", "log_in"]


@pytest.fixture
def logged_in(cli: Cli, gateway_stack: RunningStack) -> RunningStack:
    result = log_in(cli, gateway_stack)
    assert result.exit_code == 0, result.output
    return gateway_stack
