"""Routing rules that need a scripted model backend: what the node received, retries, the wait cap,
a stream abandoned by its reader, a node lost mid-request, and spreading over nodes.

Each extra node is a real node process (node manager, Worker API, inference route) registered with
the module's all-in-one stack; only its model service is the scripted :class:`FakeModelServer`,
reached as the node's existing inference service, so the chat crosses the Worker API over HTTP.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from cynode.composition import parse_roles
from cynode.sandbox import PodmanService
from cynode.settings import Role, load_settings
from tests.fixtures.chat import (
    CHAT_ENV,
    FAKE_MODEL,
    FakeModelServer,
    eventually,
    start_fake_node,
    wait_for_model,
)
from tests.fixtures.identity import Session, login
from tests.fixtures.stack import EPHEMERAL_PORTS, RunningStack, start_stack

SPREAD_MODEL = "spread-model"
SK_KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz123456"
GH_TOKEN = "ghp_abcdefghijklmnopqrstuvwxyz0123456789"


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chat-routing")


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeModelServer]:
    server = FakeModelServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def fake_node(
    chat_stack: RunningStack,
    fake: FakeModelServer,
    podman_service: PodmanService,
    directory: Path,
    chat_gateway: httpx.Client,
    chat_admin: Session,
) -> Iterator[RunningStack]:
    node = start_fake_node(directory, chat_stack, podman_service.url, "fake-node-01", fake)
    wait_for_model(chat_gateway, chat_admin, FAKE_MODEL)
    yield node
    node.stop()


@pytest.fixture
def script(fake: FakeModelServer) -> Iterator[FakeModelServer]:
    """The fake, reset to answer at once after the test whatever it scripted."""
    fake.requests.clear()
    yield fake
    fake.delay, fake.failures, fake.stream_chunks, fake.chunk_interval = 0.0, 0, 5, 0.0


def chat(gateway: httpx.Client, session: Session, content: str, model: str = FAKE_MODEL, **body: Any) -> httpx.Response:
    return gateway.post(
        "/v1/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": content}], **body},
        headers=session.headers,
    )


def assert_openai_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error: dict[str, Any] = response.json()["error"]
    assert {"message", "type", "param", "code"} <= error.keys()
    return error


@pytest.mark.usefixtures("fake_node")
def test_secrets_reach_the_node_and_the_database_only_redacted(
    chat_gateway: httpx.Client, chat_admin: Session, script: FakeModelServer, chat_db: Any
) -> None:
    response = chat(chat_gateway, chat_admin, f"my keys are {SK_KEY} and {GH_TOKEN}, keep them safe")
    assert response.status_code == 200, response.text

    sent = script.requests[-1]["messages"][-1]["content"]
    assert SK_KEY not in sent
    assert GH_TOKEN not in sent
    assert sent.count("SECRET_REDACTED") == 2

    stored = chat_db.execute(
        "SELECT content FROM chat_messages WHERE role = 'user' ORDER BY created_at DESC LIMIT 1"
    ).fetchone()["content"]
    assert stored == sent
    audit = eventually(
        lambda: chat_db.execute(
            "SELECT redaction_applied, redaction_kinds, outcome FROM chat_audit_log "
            "WHERE redaction_applied ORDER BY created_at DESC LIMIT 1"
        ).fetchone(),
        "the chat's audit record",
    )
    assert audit["redaction_applied"] is True
    assert sorted(audit["redaction_kinds"]) == ["github_token", "openai_api_key"]
    assert audit["outcome"] == "completed"


@pytest.mark.usefixtures("fake_node")
def test_a_transient_backend_failure_is_retried(
    chat_gateway: httpx.Client, chat_admin: Session, script: FakeModelServer
) -> None:
    script.failures = 1
    response = chat(chat_gateway, chat_admin, "hello")
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "fake answer"
    assert len(script.requests) == 2


@pytest.mark.usefixtures("fake_node")
def test_persistent_backend_failure_is_a_503_after_the_retries(
    chat_gateway: httpx.Client, chat_admin: Session, script: FakeModelServer
) -> None:
    script.failures = 10
    error = assert_openai_error(chat(chat_gateway, chat_admin, "hello"), 503)
    assert error["type"] == "cynodeai_error"
    assert len(script.requests) == 3, "one try and two retries"


@pytest.mark.usefixtures("fake_node")
def test_wait_cap_reached_is_a_504_from_a_separate_gateway_and_orchestrator(
    chat_stack: RunningStack, module_dsn: str, directory: Path, script: FakeModelServer
) -> None:
    settings = load_settings(
        env={},
        overrides={
            **EPHEMERAL_PORTS,
            "data_dir": str(directory / "capped"),
            "database_url": module_dsn,
            "chat.wait_cap_seconds": 1,
        },
    )
    capped = start_stack(settings, parse_roles(["gateway,orchestrator"]), CHAT_ENV)
    try:
        gateway = capped.client(Role.GATEWAY)
        session = login(gateway, "admin", CHAT_ENV["CYNODE_ADMIN_PASSWORD"])
        script.delay = 3
        error = assert_openai_error(chat(gateway, session, "are you there?"), 504)
        assert error["code"] == "cynodeai_completion_timeout"
        script.delay = 0
        assert chat(gateway, session, "and now?").status_code == 200
    finally:
        capped.stop()


@pytest.mark.usefixtures("fake_node")
def test_a_stream_abandoned_by_its_reader_stops_at_the_backend(
    chat_stack: RunningStack, chat_admin: Session, script: FakeModelServer
) -> None:
    script.stream_chunks, script.chunk_interval = 200, 0.05
    abandoned = script.abandoned_streams
    body = {"model": FAKE_MODEL, "messages": [{"role": "user", "content": "talk"}], "stream": True}
    with (
        httpx.Client(base_url=chat_stack.url(Role.GATEWAY), timeout=30) as client,
        client.stream("POST", "/v1/chat/completions", json=body, headers=chat_admin.headers) as response,
    ):
        assert response.status_code == 200
        lines = response.iter_lines()
        assert next(line for line in lines if line.startswith("data:"))
    deadline = time.monotonic() + 10
    while script.abandoned_streams == abandoned:
        assert time.monotonic() < deadline, "the backend kept generating for a reader that left"
        time.sleep(0.05)


ExtraNode = Callable[[str, FakeModelServer], RunningStack]


@pytest.fixture
def extra_node(chat_stack: RunningStack, podman_service: PodmanService, directory: Path) -> Iterator[ExtraNode]:
    """Starts more fake-backed node processes for one test; they and their fakes stop after it."""
    started: list[tuple[RunningStack, FakeModelServer]] = []

    def start(slug: str, fake: FakeModelServer) -> RunningStack:
        node = start_fake_node(directory, chat_stack, podman_service.url, slug, fake.start())
        started.append((node, fake))
        return node

    yield start
    for node, fake in started:
        node.stop()
        fake.stop()


def test_a_node_lost_mid_request_is_a_502_or_503_and_the_gateway_stays_healthy(
    chat_gateway: httpx.Client, chat_admin: Session, extra_node: ExtraNode
) -> None:
    doomed_fake = FakeModelServer(model="doomed-model", delay=30)
    doomed = extra_node("doomed-node", doomed_fake)
    wait_for_model(chat_gateway, chat_admin, "doomed-model")
    outcome: dict[str, httpx.Response] = {}
    asking = threading.Thread(
        target=lambda: outcome.update(response=chat(chat_gateway, chat_admin, "hi", "doomed-model"))
    )
    asking.start()
    deadline = time.monotonic() + 10
    while not doomed_fake.requests:
        assert time.monotonic() < deadline, "the request never reached the doomed node"
        time.sleep(0.05)
    doomed.stop()
    asking.join(timeout=30)
    assert outcome["response"].status_code in (502, 503)
    assert_openai_error(outcome["response"], outcome["response"].status_code)
    assert chat_gateway.get("/healthz").status_code == 200
    assert chat(chat_gateway, chat_admin, "still there?", "cynodeai.pm", max_tokens=4).status_code == 200
    assert chat(chat_gateway, chat_admin, "still there?", "cynodeai.pm", max_tokens=4).status_code == 200


def test_concurrent_chats_spread_over_the_nodes_serving_the_model(
    chat_stack: RunningStack, chat_gateway: httpx.Client, chat_admin: Session, extra_node: ExtraNode
) -> None:
    fakes = [FakeModelServer(model=SPREAD_MODEL, delay=0.5) for _ in range(2)]
    for index, fake in enumerate(fakes):
        extra_node(f"spread-node-{index}", fake)
    wait_for_model(chat_gateway, chat_admin, SPREAD_MODEL)
    assert chat_stack.stack.chat is not None
    router = chat_stack.stack.chat.router
    deadline = time.monotonic() + 30
    while len(chat_stack.run(router.routes(SPREAD_MODEL))) < 2:
        assert time.monotonic() < deadline, "the second node never became dispatchable"
        time.sleep(0.2)
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda i: chat(chat_gateway, chat_admin, f"q{i}", SPREAD_MODEL), range(4)))
    assert [response.status_code for response in responses] == [200] * 4
    assert all(len(fake.requests) >= 1 for fake in fakes), [len(fake.requests) for fake in fakes]
    assert all(fake.max_concurrent == 1 for fake in fakes), "a node's inference concurrency (1) was exceeded"
