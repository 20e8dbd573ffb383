"""An executor on the session's podman service, with an owner label of its own per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cynode.sandbox import PodmanService, SandboxExecutor
from tests.fixtures.podman import sandbox_settings

ExecutorFactory = Callable[..., SandboxExecutor]


@pytest.fixture
def executor_factory(podman_service: PodmanService, sandbox_image: str, tmp_path: Path) -> Iterator[ExecutorFactory]:
    executors: list[SandboxExecutor] = []

    def factory(*, owner: str | None = None, **overrides: Any) -> SandboxExecutor:
        owner = owner or f"test-{uuid.uuid4().hex[:12]}"
        settings = sandbox_settings(overrides.pop("mount_root", tmp_path / "mounts"), podman_service.url, **overrides)
        executor = SandboxExecutor(settings, podman_service.url, owner=owner)
        executors.append(executor)
        return executor

    yield factory
    for executor in executors:
        # Containers and job directories (whose workspaces are mounts) the test left behind.
        executor.sweep_orphans()


@pytest.fixture
def executor(executor_factory: ExecutorFactory) -> SandboxExecutor:
    return executor_factory()
