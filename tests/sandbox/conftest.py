"""An executor on the session's podman service, with an owner label of its own per test."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cynode.sandbox import PodmanService, SandboxExecutor
from tests.fixtures.podman import remove_containers_of, sandbox_settings

ExecutorFactory = Callable[..., SandboxExecutor]


@pytest.fixture
def executor_factory(podman_service: PodmanService, sandbox_image: str, tmp_path: Path) -> Iterator[ExecutorFactory]:
    owners: list[str] = []

    def factory(*, owner: str | None = None, **overrides: Any) -> SandboxExecutor:
        owner = owner or f"test-{uuid.uuid4().hex[:12]}"
        owners.append(owner)
        settings = sandbox_settings(overrides.pop("mount_root", tmp_path / "mounts"), podman_service.url, **overrides)
        return SandboxExecutor(settings, podman_service.url, owner=owner)

    yield factory
    for owner in owners:
        remove_containers_of(podman_service.url, owner)


@pytest.fixture
def executor(executor_factory: ExecutorFactory) -> SandboxExecutor:
    return executor_factory()
