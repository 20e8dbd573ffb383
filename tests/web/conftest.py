"""Fixtures of the web console tests: one gateway stack per module, on the module's database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fixtures.stack import RunningStack
from tests.web.console import gateway_stack_on


@pytest.fixture(scope="module")
def console_stack(module_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with gateway_stack_on(module_dsn, tmp_path_factory.mktemp("console")) as running:
        yield running
