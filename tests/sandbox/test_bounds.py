"""Hostile jobs against the executor's default bounds, on real podman: each ends with its reason,
quickly, its container and directories gone, and the executor keeps running jobs."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest
from podman import PodmanClient

from cynode.sandbox import JobOutcome, PodmanService, SandboxExecutor
from cynode.sandbox.bounds import LogTrimWatch
from cynode.sandbox.settings import SandboxResources
from tests.fixtures.podman import TEST_WORKSPACE_MB, containers_of
from tests.sandbox.conftest import ExecutorFactory
from tests.sandbox.test_executor import run, spec

# dash (the image's sh) does not take ":" as a function name; bash runs the classic spelling. The
# first process stays a while, as a job's main process does: when it exits, its PID namespace dies
# with it. bash retries refused forks forever (killed at the limit); dash's bomb collapses by itself.
# The second: the bomb in a subshell, which dash ends at its first refused fork, then a wait that
# forks nothing (a 'sleep' could not start), so the job ends by itself, exit 0, a moment later.
FORK_BOMBS = (
    "bash -c ':(){ :|:& };:; sleep 60'",
    "bomb(){ bomb|bomb& }; (bomb); i=0; while [ $i -lt 300000 ]; do i=$((i + 1)); done",
)
MIB = 1024 * 1024


def run_and_release(executor: SandboxExecutor, script: str, timeout: int = 60) -> JobOutcome:
    outcome = run(executor, spec(script, timeout=timeout))
    executor.release_job_dirs("job-1")
    assert not executor.job_root("job-1").exists()
    assert containers_of(executor._url, executor.owner) == []
    # The executor still runs an ordinary job afterwards.
    assert run(executor, spec("echo ok", job_id="job-after")).stdout.text == "ok\n"
    return outcome


def test_nul_and_invalid_bytes_become_replacement_characters_with_a_flag(executor: SandboxExecutor) -> None:
    outcome = run_and_release(executor, r"printf 'a\000b\377c'; printf 'clean' >&2")

    assert (outcome.status, outcome.reason) == ("completed", None)
    assert outcome.stdout.text == "a\ufffdb\ufffdc"
    assert (outcome.stdout.replaced, outcome.stderr.replaced) == (True, False)


def test_writing_without_end_to_the_workspace_stops_at_its_quota(executor: SandboxExecutor) -> None:
    free_before = shutil.disk_usage(executor.settings.mount_root.parent).free
    outcome = run_and_release(executor, "yes > /workspace/f")
    free_after = shutil.disk_usage(executor.settings.mount_root.parent).free

    assert (outcome.status, outcome.reason) == ("failed", "disk_quota")
    assert "No space left on device" in outcome.stderr.text
    assert free_before - free_after < TEST_WORKSPACE_MB * MIB


def test_the_root_filesystem_is_read_only_and_tmp_is_bounded(executor: SandboxExecutor) -> None:
    outcome = run(executor, spec("touch /etc/x; echo $?; df -m /tmp | tail -1 | tr -s ' ' | cut -d' ' -f2"))

    assert outcome.status == "completed", outcome.stderr.text
    assert "Read-only file system" in outcome.stderr.text
    failed, tmp_size_mb = outcome.stdout.text.split()
    assert failed != "0"
    assert int(tmp_size_mb) == executor.settings.resources.max_tmp_mb


@pytest.mark.parametrize("bomb", FORK_BOMBS, ids=["bash", "dash"])
def test_a_fork_bomb_ends_with_pids(executor: SandboxExecutor, bomb: str) -> None:
    outcome = run_and_release(executor, bomb)

    assert (outcome.status, outcome.reason) == ("failed", "pids")


def test_allocating_past_the_memory_limit_ends_with_memory(executor: SandboxExecutor) -> None:
    outcome = run_and_release(executor, "python3 -c 'data = b\"x\" * (4 << 30)'")

    assert (outcome.status, outcome.exit_code, outcome.reason) == ("failed", 137, "memory")


def test_the_container_log_stays_bounded_while_a_job_floods_stdout(
    executor_factory: ExecutorFactory, podman_service: PodmanService
) -> None:
    executor = executor_factory(resources=SandboxResources(max_memory_mb=256, max_pids=64, max_log_mb=1))
    largest = 0
    stop = threading.Event()

    def watch_log_size() -> None:
        nonlocal largest
        with PodmanClient(base_url=podman_service.url) as client:
            while not stop.is_set():
                for container in containers_of(podman_service.url, executor.owner):
                    try:
                        log_path = client.api.get(f"/containers/{container.id}/json").json()["HostConfig"]["LogConfig"][
                            "Path"
                        ]
                        largest = max(largest, Path(log_path).stat().st_size)
                    except (OSError, KeyError, ValueError):
                        pass
                time.sleep(0.2)

    watcher = threading.Thread(target=watch_log_size, daemon=True)
    watcher.start()
    try:
        outcome = run(executor, spec("timeout 5 yes", timeout=60))
    finally:
        stop.set()
        watcher.join()

    assert outcome.stdout.text.startswith("y\n")
    assert 0 < largest <= 1 * MIB + 64 * 1024


def test_output_lost_to_the_trimmed_container_log_is_flagged_truncated(executor_factory: ExecutorFactory) -> None:
    executor = executor_factory(resources=SandboxResources(max_memory_mb=256, max_pids=64, max_log_mb=1))

    outcome = run(executor, spec("timeout 2 yes; echo done", timeout=60))

    assert (outcome.status, outcome.reason) == ("completed", None)
    # What is left is the log's last part, well inside the output limit: only the log cap cut it.
    assert outcome.stdout.text.endswith("y\ny\ndone\n")
    assert len(outcome.stdout.text.encode()) < executor.settings.max_output_bytes
    assert outcome.stdout.truncated


def test_a_log_that_cannot_be_watched_tells_nothing(tmp_path: Path) -> None:
    with LogTrimWatch(str(tmp_path / "missing.log")) as missing, LogTrimWatch(None) as unnamed:
        assert (missing.trimmed, unnamed.trimmed) == (False, False)


def test_a_log_replaced_under_its_path_was_trimmed(tmp_path: Path) -> None:
    log_path = tmp_path / "ctr.log"
    log_path.write_bytes(b"first part\n")
    with LogTrimWatch(str(log_path)) as watch:
        log_path.write_bytes(b"appended in place\n")
        assert not watch.trimmed
        # conmon's trim: a fresh file renamed over the full one.
        (tmp_path / "ctr.log.tmp").write_bytes(b"")
        (tmp_path / "ctr.log.tmp").rename(log_path)
        assert watch.trimmed
