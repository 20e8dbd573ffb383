"""The task API over real HTTP: create, names, get, list paging, ownership, cancel, logs, bad input."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import pytest

from tests.fixtures.identity import USER_PASSWORD, assert_problem, create_user
from tests.fixtures.stack import RunningStack
from tests.fixtures.tasks import FakeWorker, TaskApi, completed_response, fake_node, task_api

DB = Any


@pytest.fixture
def alice(task_stack: RunningStack, admin_tasks: TaskApi) -> TaskApi:
    create_user(admin_tasks.http, admin_tasks.session, "alice")
    return task_api(task_stack, "alice", USER_PASSWORD)


def counts(db: DB) -> tuple[int, int, int]:
    row = db.execute(
        "SELECT (SELECT count(*) FROM tasks) AS tasks, (SELECT count(*) FROM jobs) AS jobs,"
        " (SELECT count(*) FROM task_artifacts) AS artifacts"
    ).fetchone()
    return row["tasks"], row["jobs"], row["artifacts"]


def test_create_returns_the_queued_task_and_stores_one_job(admin_tasks: TaskApi, db: DB) -> None:
    created = admin_tasks.create("echo hello world", input_mode="commands", attachments=["notes/a.md", " b.txt "])

    assert created["id"] == created["task_id"]
    uuid.UUID(created["id"])
    assert created["status"] == "queued"
    assert created["task_name"] == "echo-hello-world"
    assert created["prompt"] == "echo hello world"
    assert created["attachments"] == ["notes/a.md", "b.txt"]
    assert created["created_at"].endswith("Z")
    job = db.execute("SELECT * FROM jobs WHERE task_id = %s", (created["id"],)).fetchone()
    assert job["status"] == "queued"
    assert job["attempt"] == 0
    assert job["needs_inference"] is False
    assert job["payload"] == {"image": "localhost/cynode-sandbox:latest", "command": ["sh", "-c", "echo hello world"]}
    task = db.execute("SELECT t.*, p.slug FROM tasks t JOIN projects p ON p.id = t.project_id").fetchone()
    assert task["slug"] == f"default-{task['created_by']}"


def test_prompt_mode_is_an_inference_job_that_never_runs_the_prompt_as_shell(admin_tasks: TaskApi, db: DB) -> None:
    prompt = "What is 2+2? $(rm -rf /)"
    created = admin_tasks.create(prompt)

    job = db.execute("SELECT * FROM jobs WHERE task_id = %s", (created["id"],)).fetchone()
    assert job["needs_inference"] is True
    payload = job["payload"]
    assert payload["use_inference"] is True
    assert payload["command"][:2] == ["python3", "-c"]
    assert prompt not in payload["command"][2]
    assert payload["env"] == {"CYNODE_PROMPT": prompt}
    assert created["task_name"] == "what-is-2-2-rm"


def test_names_are_normalized_and_made_unique_per_user(admin_tasks: TaskApi, alice: TaskApi) -> None:
    names = [admin_tasks.create("echo x", task_name="  Deploy Docs!! ")["task_name"] for _ in range(3)]
    assert names == ["deploy-docs", "deploy-docs-2", "deploy-docs-3"]
    assert alice.create("echo x", task_name="deploy-docs")["task_name"] == "deploy-docs"
    assert admin_tasks.create("%%%")["task_name"] == "task"
    assert admin_tasks.create("echo named", task_name="my-task")["task_name"] == "my-task"


def test_get_by_id_or_name(admin_tasks: TaskApi) -> None:
    created = admin_tasks.create("echo named", task_name="my-task")

    assert admin_tasks.task(created["id"]) == created
    assert admin_tasks.task("my-task") == created
    assert_problem(admin_tasks.get("/v1/tasks/no-such-task"), HTTPStatus.NOT_FOUND)
    assert_problem(admin_tasks.get(f"/v1/tasks/{uuid.uuid4()}"), HTTPStatus.NOT_FOUND)


@pytest.mark.parametrize("suffix", ["", "/result", "/logs", "/cancel"])
def test_a_reference_with_a_nul_is_not_found(admin_tasks: TaskApi, suffix: str) -> None:
    created = admin_tasks.create("echo named", task_name="my-task")
    path = f"/v1/tasks/my%00task{suffix}"
    answer = admin_tasks.post(path) if suffix == "/cancel" else admin_tasks.get(path)

    assert assert_problem(answer, HTTPStatus.NOT_FOUND)["detail"] == "Task not found"
    assert admin_tasks.task(created["id"]) == created


def test_an_id_wins_over_a_task_named_like_it(admin_tasks: TaskApi) -> None:
    first = admin_tasks.create("echo first")
    namesake = admin_tasks.create("echo namesake", task_name=first["id"])
    assert namesake["task_name"] == first["id"]

    assert admin_tasks.task(first["id"]) == first
    assert admin_tasks.task(namesake["id"]) == namesake


@pytest.mark.parametrize("suffix", ["", "/result", "/logs"])
def test_another_users_task_is_not_found(admin_tasks: TaskApi, alice: TaskApi, suffix: str) -> None:
    created = admin_tasks.create("echo mine", task_name="admins-task")

    for reference in (created["id"], "admins-task"):
        problem = assert_problem(alice.get(f"/v1/tasks/{reference}{suffix}"), HTTPStatus.NOT_FOUND)
        assert problem["detail"] == "Task not found"


def test_another_users_task_cannot_be_canceled(admin_tasks: TaskApi, alice: TaskApi) -> None:
    created = admin_tasks.create("echo mine")

    assert_problem(alice.post(f"/v1/tasks/{created['id']}/cancel"), HTTPStatus.NOT_FOUND)
    assert admin_tasks.task(created["id"])["status"] == "queued"


def test_list_shows_only_the_callers_tasks_newest_first(admin_tasks: TaskApi, alice: TaskApi) -> None:
    admin_ids = [admin_tasks.create(f"echo {index}")["id"] for index in range(3)]
    alice.create("echo alice")

    listed = admin_tasks.get("/v1/tasks").json()

    assert [task["id"] for task in listed["tasks"]] == admin_ids[::-1]
    assert "next_cursor" not in listed


def collect_pages(api: TaskApi, **params: Any) -> tuple[list[str], list[int]]:
    """Every task id over all pages, and the size of each page."""
    ids: list[str] = []
    sizes: list[int] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = api.get("/v1/tasks", params=query)
        assert response.status_code == HTTPStatus.OK, response.text
        page = response.json()
        ids += [task["id"] for task in page["tasks"]]
        sizes.append(len(page["tasks"]))
        cursor = page.get("next_cursor")
        if cursor is None:
            return ids, sizes


def test_status_filter_applies_before_paging_and_the_cursor_walks_every_page(admin_tasks: TaskApi) -> None:
    ids = [admin_tasks.create(f"echo {index}")["id"] for index in range(7)]
    canceled = ids[::2]  # 4 of 7, spread between queued ones
    for task_id in canceled:
        admin_tasks.cancel(task_id)

    canceled_ids, canceled_pages = collect_pages(admin_tasks, status="canceled", limit=3)
    all_ids, all_pages = collect_pages(admin_tasks, limit=2)

    assert canceled_ids == canceled[::-1]
    assert canceled_pages == [3, 1]
    assert all_ids == ids[::-1]
    assert all_pages == [2, 2, 2, 1]
    queued = admin_tasks.get("/v1/tasks", params={"status": "queued", "limit": 200}).json()
    assert [task["id"] for task in queued["tasks"]] == [task_id for task_id in ids[::-1] if task_id not in canceled]


def test_cancel_is_reported_once(admin_tasks: TaskApi, db: DB) -> None:
    created = admin_tasks.create("cancel me")

    first = admin_tasks.cancel(created["task_name"])
    second = admin_tasks.cancel(created["id"])

    assert first == {"task_id": created["id"], "canceled": True, "status": "canceled"}
    assert second == {"task_id": created["id"], "canceled": False, "status": "canceled"}
    job = db.execute("SELECT status, ended_at FROM jobs WHERE task_id = %s", (created["id"],)).fetchone()
    assert job["status"] == "canceled"
    assert job["ended_at"] is not None


@pytest.fixture
def output_worker(task_stack: RunningStack) -> Iterator[FakeWorker]:
    def with_output(body: dict[str, Any]) -> tuple[int, Any]:
        response = completed_response(body, "out line\n")
        response["stderr"] = "err line\n"
        return HTTPStatus.OK, response

    fake = FakeWorker(behaviour=with_output).start()
    fake_node(task_stack, fake)
    yield fake
    fake.stop()


@pytest.mark.parametrize(
    ("stream", "stdout", "stderr"),
    [
        (None, "out line\n", "err line\n"),
        ("all", "out line\n", "err line\n"),
        ("stdout", "out line\n", ""),
        ("stderr", "", "err line\n"),
    ],
)
def test_logs_by_stream(
    admin_tasks: TaskApi, output_worker: FakeWorker, stream: str | None, stdout: str, stderr: str
) -> None:
    created = admin_tasks.create("echo out; echo err >&2", input_mode="script")
    admin_tasks.wait_for_status(created["id"])

    response = admin_tasks.get(f"/v1/tasks/{created['id']}/logs", params={"stream": stream} if stream else {})

    assert response.status_code == HTTPStatus.OK, response.text
    assert response.json() == {"task_id": created["id"], "stdout": stdout, "stderr": stderr}


BAD_CREATES: list[tuple[str, bytes, str, int, str]] = [
    ("not json", b"{prompt", "application/json", HTTPStatus.BAD_REQUEST, "invalid JSON"),
    ("not declared json", b'{"prompt": "x"}', "text/plain", HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "Content-Type"),
    ("unknown input_mode", b'{"prompt": "ls", "input_mode": "shell"}', "application/json", 400, "$.input_mode"),
    ("missing prompt", b'{"input_mode": "commands"}', "application/json", 400, "prompt"),
    ("empty prompt", b'{"prompt": ""}', "application/json", 400, "prompt is required"),
    ("blank prompt", b'{"prompt": " \\n\\t"}', "application/json", 400, "prompt is required"),
    ("prompt with NUL", b'{"prompt": "echo \\u0000"}', "application/json", 400, "NUL"),
    ("prompt not a string", b'{"prompt": 7}', "application/json", 400, "$.prompt"),
    ("non-UUID project_id", b'{"prompt": "x", "project_id": "proj-1"}', "application/json", 400, "$.project_id"),
    (
        "unknown project_id",
        f'{{"prompt": "x", "project_id": "{uuid.uuid4()}"}}'.encode(),
        "application/json",
        400,
        "project",
    ),
    ("name without letters", b'{"prompt": "x", "task_name": "!!!"}', "application/json", 400, "task_name"),
    ("empty attachment", b'{"prompt": "x", "attachments": ["  "]}', "application/json", 400, "attachments"),
    (
        "attachment too long",
        b'{"prompt": "x", "attachments": ["' + b"a" * 2049 + b'"]}',
        "application/json",
        400,
        "$.attachments[0]",
    ),
    ("prompt too long", b'{"prompt": "' + b"a" * (121 * 1024) + b'"}', "application/json", 400, "longer than"),
]


@pytest.mark.parametrize(
    ("body", "media_type", "status", "detail"),
    [case[1:] for case in BAD_CREATES],
    ids=[case[0] for case in BAD_CREATES],
)
def test_bad_create_is_a_problem_and_changes_nothing(
    admin_tasks: TaskApi, db: DB, body: bytes, media_type: str, status: int, detail: str
) -> None:
    response = admin_tasks.post(
        "/v1/tasks", content=body, headers={**admin_tasks.session.headers, "Content-Type": media_type}
    )

    problem = assert_problem(response, status)
    assert detail in problem["detail"]
    assert counts(db) == (0, 0, 0)


BAD_QUERIES = [
    ("/v1/tasks", {"limit": "0"}, "limit"),
    ("/v1/tasks", {"limit": "201"}, "limit"),
    ("/v1/tasks", {"limit": "ten"}, "limit"),
    ("/v1/tasks", {"cursor": "not-a-cursor"}, "Invalid cursor"),
    ("/v1/tasks", {"cursor": "bm90fGF8Y3Vyc29y"}, "Invalid cursor"),
    ("/v1/tasks", {"status": "pending"}, "status"),
    ("/v1/tasks/{id}/logs", {"stream": "both"}, "stream"),
]


@pytest.mark.parametrize(("path", "params", "detail"), BAD_QUERIES)
def test_bad_query_is_a_problem_and_changes_nothing(
    admin_tasks: TaskApi, db: DB, path: str, params: dict[str, str], detail: str
) -> None:
    created = admin_tasks.create("echo keep")
    before = counts(db)

    problem = assert_problem(admin_tasks.get(path.format(id=created["id"]), params=params), HTTPStatus.BAD_REQUEST)

    assert detail in problem["detail"]
    assert counts(db) == before
    assert admin_tasks.task(created["id"])["status"] == "queued"


def test_task_routes_need_a_signed_in_user(admin_tasks: TaskApi) -> None:
    created = admin_tasks.create("echo private")

    for method, path in [
        ("POST", "/v1/tasks"),
        ("GET", "/v1/tasks"),
        ("GET", f"/v1/tasks/{created['id']}"),
        ("POST", f"/v1/tasks/{created['id']}/cancel"),
    ]:
        assert_problem(admin_tasks.http.request(method, path, json={"prompt": "x"}), HTTPStatus.UNAUTHORIZED)
