"""The sandbox executor against real podman: profile, directories, outcomes, slots, sweep, probe."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC
from pathlib import Path

import pytest
from podman import PodmanClient

from cynode.sandbox import (
    JobAlreadyRunningError,
    JobOutcome,
    JobSpec,
    PodmanService,
    SandboxBusyError,
    SandboxExecutor,
)
from cynode.sandbox.profile import LABEL_ATTEMPT, LABEL_JOB, LABEL_OWNER, LABEL_TASK, container_owner
from tests.fixtures.podman import TEST_MAX_PIDS, containers_of
from tests.sandbox.conftest import ExecutorFactory


def spec(script: str, *, job_id: str = "job-1", timeout: int = 30, **fields: object) -> JobSpec:
    values: dict[str, object] = {
        "task_id": "task-1",
        "job_id": job_id,
        "image": "localhost/cynode-sandbox:latest",
        "command": ("sh", "-c", script),
        "env": {},
        "timeout_seconds": timeout,
    }
    values.update(fields)
    return JobSpec(**values)  # type: ignore[arg-type]


def run(executor: SandboxExecutor, job: JobSpec) -> JobOutcome:
    with executor.reserve(job.job_id) as running:
        return executor.run(running, job)


def wait_for_running_container(podman_url: str, owner: str) -> None:
    deadline = time.monotonic() + 30
    while not any(c.attrs["State"] == "running" for c in containers_of(podman_url, owner)):
        assert time.monotonic() < deadline, "the job's container never started"
        time.sleep(0.05)


def test_the_container_profile_is_locked_down(executor: SandboxExecutor) -> None:
    script = (
        "id -u; id -g; hostname; ulimit -n; grep -E '^(NoNewPrivs|CapEff)' /proc/self/status; "
        # cgroup v2 names first, then v1's: the limits must hold whichever hierarchy the host runs.
        "cat /sys/fs/cgroup/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids/pids.max; "
        "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes; "
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"
    )
    outcome = run(executor, spec(script))
    assert outcome.status == "completed", outcome.stderr.text
    assert outcome.stdout.text.split() == [
        "65534",
        "65534",
        "sandbox",
        "1024",
        "CapEff:",
        "0" * 16,
        "NoNewPrivs:",
        "1",
        str(TEST_MAX_PIDS),
        str(256 * 1024 * 1024),
        "lo",
    ]


def test_the_environment_holds_only_the_image_the_request_and_the_task_context(
    executor: SandboxExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CYNODE_WORKER_SECRET_FOR_TEST", "must-not-leak")
    job = spec("env", env={"GREETING": "hi", "CYNODE_TASK_ID": "forged", "CYNODE_WORKSPACE_DIR": "/tmp"})
    outcome = run(executor, job)
    env = dict(line.split("=", 1) for line in outcome.stdout.text.splitlines())
    assert env["GREETING"] == "hi"
    assert (env["CYNODE_TASK_ID"], env["CYNODE_JOB_ID"], env["CYNODE_WORKSPACE_DIR"]) == (
        "task-1",
        "job-1",
        "/workspace",
    )
    assert "must-not-leak" not in outcome.stdout.text
    assert set(env) <= {"PATH", "LANG", "HOME", "HOSTNAME", "TERM", "container", "PWD", "GREETING"} | {
        "CYNODE_TASK_ID",
        "CYNODE_JOB_ID",
        "CYNODE_WORKSPACE_DIR",
    }


def test_workspace_and_job_dirs_are_host_dirs_kept_until_released(executor: SandboxExecutor) -> None:
    job = spec("cat /job/job.json; pwd; echo result > /workspace/out.txt", job_spec_json='{"steps": []}')
    outcome = run(executor, job)
    assert outcome.stdout.text == '{"steps": []}/workspace\n'
    workspace = executor.job_root("job-1") / "workspace"
    assert (workspace / "out.txt").read_text() == "result\n"
    executor.release_job_dirs("job-1")
    assert not executor.job_root("job-1").exists()


def test_a_new_attempt_starts_with_an_empty_workspace(executor: SandboxExecutor) -> None:
    run(executor, spec("echo old > /workspace/leftover"))
    outcome = run(executor, spec("ls -A /workspace"))
    assert outcome.stdout.text == ""


def test_dirs_of_a_running_job_are_not_released(executor: SandboxExecutor) -> None:
    with executor.reserve("job-1"):
        executor.job_root("job-1").mkdir(parents=True)
        executor.release_job_dirs("job-1")
        assert executor.job_root("job-1").exists()


def test_exit_codes_and_streams_come_back_separately(executor: SandboxExecutor) -> None:
    outcome = run(executor, spec("echo out; echo err >&2; exit 7"))
    assert (outcome.status, outcome.exit_code) == ("failed", 7)
    assert (outcome.stdout.text, outcome.stderr.text) == ("out\n", "err\n")
    assert outcome.started_at.tzinfo is UTC
    assert outcome.started_at <= outcome.ended_at


def test_stderr_is_capped_independently(executor_factory: ExecutorFactory) -> None:
    executor = executor_factory(max_output_bytes=1000)
    outcome = run(executor, spec("echo small; head -c 5000 /dev/zero | tr '\\0' e >&2"))
    assert (outcome.stdout.text, outcome.stdout.truncated) == ("small\n", False)
    assert (outcome.stderr.text, outcome.stderr.truncated) == ("e" * 1000, True)


def test_a_missing_command_fails_with_the_runtime_message(executor: SandboxExecutor) -> None:
    outcome = run(executor, JobSpec("task-1", "job-1", executor.settings.default_image, ("no-such-tool",), {}, 30))
    assert (outcome.status, outcome.exit_code) == ("failed", -1)
    assert "no-such-tool" in outcome.stderr.text


def test_a_missing_image_fails_without_running(executor: SandboxExecutor) -> None:
    outcome = run(executor, spec("true", image="localhost/no-such-image:latest"))
    assert (outcome.status, outcome.exit_code) == ("failed", -1)
    assert "not present on this node" in outcome.stderr.text


def test_allowed_images_take_patterns(executor_factory: ExecutorFactory) -> None:
    executor = executor_factory(allowed_images=("localhost/cynode-*",))
    assert executor.image_allowed("localhost/cynode-sandbox:latest")
    assert not executor.image_allowed("docker.io/library/alpine:latest")
    assert executor_factory().image_allowed("anything:at-all")


def test_every_container_is_labelled_and_removed(executor: SandboxExecutor, podman_service: PodmanService) -> None:
    labels: dict[str, str] = {}

    def inspect_while_running() -> None:
        wait_for_running_container(podman_service.url, executor.owner)
        labels.update(containers_of(podman_service.url, executor.owner)[0].labels)

    watcher = threading.Thread(target=inspect_while_running)
    watcher.start()
    run(executor, spec("sleep 1", job_id="job-7", attempt=3))
    watcher.join()
    assert {key: labels[key] for key in (LABEL_OWNER, LABEL_TASK, LABEL_JOB, LABEL_ATTEMPT)} == {
        LABEL_OWNER: executor.owner,
        LABEL_TASK: "task-1",
        LABEL_JOB: "job-7",
        LABEL_ATTEMPT: "3",
    }
    assert containers_of(podman_service.url, executor.owner) == []


def test_a_timeout_kills_the_job_and_keeps_its_output(executor: SandboxExecutor) -> None:
    outcome = run(executor, spec("echo before; sleep 600", timeout=1))
    assert (outcome.status, outcome.exit_code) == ("timeout", -1)
    assert outcome.stdout.text == "before\n"
    assert (outcome.ended_at - outcome.started_at).total_seconds() < 30


def test_cancel_kills_a_running_job(executor: SandboxExecutor, podman_service: PodmanService) -> None:
    outcomes: list[JobOutcome] = []
    worker = threading.Thread(target=lambda: outcomes.append(run(executor, spec("sleep 600"))))
    worker.start()
    wait_for_running_container(podman_service.url, executor.owner)
    assert executor.cancel("job-1")
    worker.join(timeout=60)
    (outcome,) = outcomes
    assert (outcome.status, outcome.exit_code) == ("failed", -1)
    assert "job canceled" in outcome.stderr.text
    assert not executor.cancel("job-1")


def test_a_job_stopped_before_its_container_exists_never_starts(executor: SandboxExecutor) -> None:
    with executor.reserve("job-1") as running:
        running.stop("canceled")
        outcome = executor.run(running, spec("echo ran"))
    assert (outcome.status, outcome.exit_code, outcome.stdout.text) == ("failed", -1, "")


def test_stop_all_kills_every_running_job(executor: SandboxExecutor, podman_service: PodmanService) -> None:
    outcomes: list[JobOutcome] = []
    worker = threading.Thread(target=lambda: outcomes.append(run(executor, spec("sleep 600"))))
    worker.start()
    wait_for_running_container(podman_service.url, executor.owner)
    executor.stop_all()
    worker.join(timeout=60)
    assert "shutting down" in outcomes[0].stderr.text


def test_slots_are_limited_and_a_job_id_runs_once_at_a_time(executor_factory: ExecutorFactory) -> None:
    executor = executor_factory(max_concurrency=1)
    with executor.reserve("a"):
        with pytest.raises(JobAlreadyRunningError):
            executor.reserve("a")
        with pytest.raises(SandboxBusyError):
            executor.reserve("b")
    with executor.reserve("b"):
        pass


def test_orphans_of_this_owner_are_swept(executor_factory: ExecutorFactory, podman_service: PodmanService) -> None:
    mine, other = executor_factory(), executor_factory()
    with PodmanClient(base_url=podman_service.url) as client:
        for owner in (mine.owner, other.owner):
            client.containers.create(
                mine.settings.default_image, command=["sleep", "600"], labels={LABEL_OWNER: owner}
            ).start()
    assert mine.sweep_orphans() == 1
    assert containers_of(podman_service.url, mine.owner) == []
    assert len(containers_of(podman_service.url, other.owner)) == 1


def test_the_probe_runs_a_container(executor: SandboxExecutor, podman_service: PodmanService) -> None:
    assert executor.probe() is None
    assert containers_of(podman_service.url, executor.owner) == []
    assert list(executor.settings.mount_root.iterdir()) == []


def test_the_probe_names_a_missing_default_image(executor_factory: ExecutorFactory) -> None:
    problem = executor_factory(default_image="localhost/no-such-image:latest").probe()
    assert problem is not None
    assert "build-sandbox-image.sh" in problem


def test_an_unwritable_mount_root_is_reported(executor_factory: ExecutorFactory, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    problem = executor_factory(mount_root=blocker / "mounts").mount_root_problem()
    assert problem is not None
    assert str(blocker / "mounts") in problem
    assert executor_factory().mount_root_problem() is None


def test_a_nodes_owner_label_tells_installations_with_one_slug_apart(tmp_path: Path) -> None:
    first, second = tmp_path / "first" / "state", tmp_path / "second" / "state"
    same_place = tmp_path / "first" / ".." / "first" / "state"
    assert container_owner("node-01", first) == container_owner("node-01", same_place)
    assert container_owner("node-01", first) != container_owner("node-01", second)
    assert container_owner("node-01", first).startswith("node-01@")


def test_a_node_started_with_another_nodes_slug_leaves_that_nodes_jobs_alone(
    executor_factory: ExecutorFactory, podman_service: PodmanService, tmp_path: Path
) -> None:
    slug = f"shared-{uuid.uuid4().hex[:8]}"
    running = executor_factory(owner=container_owner(slug, tmp_path / "running" / "state"))
    copy = executor_factory(owner=container_owner(slug, tmp_path / "copy" / "state"))
    with PodmanClient(base_url=podman_service.url) as client:
        client.containers.create(
            running.settings.default_image, command=["sleep", "600"], labels={LABEL_OWNER: running.owner}
        ).start()
    assert copy.sweep_orphans() == 0
    assert len(containers_of(podman_service.url, slug)) == 1
    assert running.sweep_orphans() == 1
