"""Fixtures for the admin API tests: a gateway + orchestrator stack that nodes can register with."""

from __future__ import annotations

import httpx
import pytest

from cynode.settings import Role
from tests.fixtures.identity import ADMIN_HANDLE, ADMIN_PASSWORD, USER_PASSWORD, Session, create_user, login
from tests.fixtures.stack import RunningStack, StackFactory
from tests.fixtures.tasks import start_task_stack

ALICE = "alice"


@pytest.fixture
def admin_stack(stack_factory: StackFactory) -> RunningStack:
    return start_task_stack(stack_factory)


@pytest.fixture
def http(admin_stack: RunningStack) -> httpx.Client:
    return admin_stack.client(Role.GATEWAY)


@pytest.fixture
def admin(http: httpx.Client) -> Session:
    return login(http, ADMIN_HANDLE, ADMIN_PASSWORD)


@pytest.fixture
def alice(http: httpx.Client, admin: Session) -> Session:
    """A signed-in user who is not an admin."""
    create_user(http, admin, ALICE)
    return login(http, ALICE, USER_PASSWORD)
