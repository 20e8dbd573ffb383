"""Worker service rules that need no container: config, auth, limits and request refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cynode.contracts.worker import RunJobRequest, SandboxSpec
from cynode.http.problems import ProblemError
from cynode.sandbox import PodmanService, SandboxExecutor, SandboxSettings
from cynode.worker import WorkerService
from cynode.worker.kept_results import KeptResults

TOKEN = "s3cret-worker-token"


def worker(tmp_path: Path, *, max_request_bytes: int | None = None, **settings: Any) -> WorkerService:
    sandbox = SandboxSettings(mount_root=tmp_path / "mounts", **settings)
    podman = PodmanService(tmp_path, socket_url=f"unix://{tmp_path}/unused.sock")
    return WorkerService(
        SandboxExecutor(sandbox, podman.url),
        podman,
        kept_results=KeptResults(tmp_path / "kept_results"),
        max_request_bytes=max_request_bytes,
    )


def request(**sandbox: Any) -> RunJobRequest:
    fields: dict[str, Any] = {"image": "", "command": ["true"], **sandbox}
    return RunJobRequest(version=1, task_id="t", job_id="j", sandbox=SandboxSpec(**fields))


def problem_of(error: pytest.ExceptionInfo[ProblemError]) -> tuple[int, str]:
    return error.value.status, error.value.detail


def test_request_limit_is_the_smallest_of_yaml_config_and_ten_mib(tmp_path: Path) -> None:
    assert worker(tmp_path).max_request_bytes() == 10 * 1024 * 1024
    assert worker(tmp_path, max_request_bytes=50 * 1024 * 1024).max_request_bytes() == 10 * 1024 * 1024
    service = worker(tmp_path, max_request_bytes=5000)
    assert service.max_request_bytes() == 5000
    service.apply_config(bearer_token=TOKEN, max_request_bytes=9000)
    assert service.max_request_bytes() == 5000
    service.apply_config(bearer_token=TOKEN, max_request_bytes=3000)
    assert service.max_request_bytes() == 3000


@pytest.mark.parametrize(
    "config",
    [
        {"bearer_token": ""},
        {"bearer_token": TOKEN, "max_request_bytes": 0},
        {"bearer_token": TOKEN, "max_job_timeout_seconds": -1},
    ],
)
def test_invalid_config_is_refused(tmp_path: Path, config: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must"):
        worker(tmp_path).apply_config(**config)


def test_calls_before_any_config_are_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ProblemError) as error:
        worker(tmp_path).authenticate(f"Bearer {TOKEN}")
    assert error.value.status == 503
    assert "Retry-After" in error.value.headers


@pytest.mark.parametrize("header", [None, "", TOKEN, f"Basic {TOKEN}", "Bearer wrong", f"Bearer {TOKEN}x", "Bearer "])
def test_anything_but_the_applied_bearer_token_is_unauthorized(tmp_path: Path, header: str | None) -> None:
    service = worker(tmp_path)
    service.apply_config(bearer_token=TOKEN)
    with pytest.raises(ProblemError) as error:
        service.authenticate(header)
    assert error.value.status == 401
    assert TOKEN not in error.value.detail


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}", f"bearer {TOKEN}"])
def test_the_applied_token_is_accepted(tmp_path: Path, header: str) -> None:
    service = worker(tmp_path)
    service.apply_config(bearer_token=TOKEN)
    service.authenticate(header)


def test_a_new_config_replaces_the_token(tmp_path: Path) -> None:
    service = worker(tmp_path)
    service.apply_config(bearer_token=TOKEN)
    service.apply_config(bearer_token="rotated")
    service.authenticate("Bearer rotated")
    with pytest.raises(ProblemError):
        service.authenticate(f"Bearer {TOKEN}")


@pytest.mark.parametrize(
    ("sandbox", "detail"),
    [
        ({"command": []}, "sandbox.command is required"),
        ({"command": [], "job_spec_json": "{}"}, "job_spec_json"),
        ({"command": ["echo", "a\x00b"]}, "NUL"),
        ({"env": {"A=B": "x"}}, "sandbox.env"),
        ({"env": {"": "x"}}, "sandbox.env"),
        ({"env": {"A": "\x00"}}, "sandbox.env"),
        ({"use_inference": True}, "use_inference"),
        ({"image": "docker.io/library/alpine:latest"}, "not allowed"),
    ],
)
async def test_unrunnable_requests_are_refused(tmp_path: Path, sandbox: dict[str, Any], detail: str) -> None:
    service = worker(tmp_path, allowed_images=("localhost/*",))
    service.apply_config(bearer_token=TOKEN)
    with pytest.raises(ProblemError) as error:
        await service.run_job(request(**sandbox))
    status, message = problem_of(error)
    assert status == 400
    assert detail in message


async def test_a_disabled_sandbox_refuses_jobs_and_is_never_ready(tmp_path: Path) -> None:
    service = worker(tmp_path, mode="disabled")
    service.apply_config(bearer_token=TOKEN)
    with pytest.raises(ProblemError) as error:
        await service.run_job(request())
    assert error.value.status == 503
    assert "disabled" in (await service.readiness() or "")


async def test_readiness_waits_for_config(tmp_path: Path) -> None:
    assert "config not applied" in (await worker(tmp_path).readiness() or "")
