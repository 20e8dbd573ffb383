"""Acceptance: inference for sandbox jobs through the per-job Unix-socket proxy, on the real model.

Covers features/worker_node/worker_inference_proxy.feature (the upstream proxy scenarios) and
worker_inference_sandbox.feature (a network-less job really talking to the model, the proxy's
limits seen from inside the sandbox, and the node's backend decisions). Jobs run in real podman
containers; the backend is the embedded llama.cpp server on the Gemma 270M model.
"""

from __future__ import annotations

import asyncio
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from cynode.contracts.nodes import InferenceBackend
from cynode.inference.node import InferenceStartError, NodeInference
from cynode.inference.proxy import MAX_REQUEST_BYTES, InferenceProxy
from cynode.sandbox import PodmanService
from tests.fixtures.inference import embedded_settings, orchestrator_instruction
from tests.fixtures.podman import WORKER_TOKEN, RunningWorker, WorkerFactory

scenarios("worker_node/worker_inference_proxy.feature", "worker_node/worker_inference_sandbox.feature")

TASK_ID = "bdd-inference-task"
JOB_ID = "bdd-inference-job"

# Sandbox-side client of INFERENCE_PROXY_URL: stdlib only, HTTP over the Unix socket it names.
UNIX_HTTP = """
import http.client, json, os, socket, sys, urllib.parse

SOCKET = urllib.parse.unquote(os.environ["INFERENCE_PROXY_URL"].removeprefix("http+unix://"))

class UnixConnection(http.client.HTTPConnection):
    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(120)
        self.sock.connect(SOCKET)

def call(method, path, body=None):
    connection = UnixConnection("localhost")
    headers = {"Content-Type": "application/json"} if body is not None else {}
    try:
        connection.request(method, path, body=body, headers=headers)
    except (BrokenPipeError, ConnectionResetError):
        pass  # The proxy answered before reading the whole body; its answer is still readable.
    response = connection.getresponse()
    return response.status, response.read()
"""

ASK_MODEL = (
    UNIX_HTTP
    + """
prompt = sys.argv[1]
status, body = call("POST", "/v1/chat/completions", json.dumps({
    "messages": [{"role": "user", "content": prompt}], "max_tokens": 48, "temperature": 0,
}).encode())
print(status)
print(json.loads(body)["choices"][0]["message"]["content"].strip())
"""
)

PROBE_PROXY = (
    UNIX_HTTP
    + """
print("GET /api/tags", call("GET", "/api/tags")[0])
print("POST /api/generate", call("POST", "/api/generate", b'{"prompt": "hi"}')[0])
print("POST /v1/chat/completions with 11 MiB", call("POST", "/v1/chat/completions", b"x" * (11 * 1024 * 1024))[0])
"""
)

TRY_TCP = """
import socket
for host, port in [("1.1.1.1", 443), ("8.8.8.8", 53), ("10.0.2.2", 11434), ("127.0.0.1", 11434)]:
    try:
        socket.create_connection((host, port), timeout=3).close()
        print("connected", host, port)
    except OSError as exc:
        print("blocked", host, port, type(exc).__name__)
with open("/proc/net/dev") as devices:
    print("interfaces", sorted(line.split(":")[0].strip() for line in devices.readlines()[2:]))
"""


@dataclass
class Context:
    inference: NodeInference | None = None
    worker: RunningWorker | None = None
    proxy: InferenceProxy | None = None
    response: httpx.Response | None = None
    node: NodeInference | None = None
    apply_error: InferenceStartError | None = None

    def answered(self) -> httpx.Response:
        assert self.response is not None, "nothing was sent in this scenario"
        return self.response

    def result(self) -> dict[str, Any]:
        """The Worker API's job result (the call must have succeeded)."""
        response = self.answered()
        assert response.status_code == 200, response.text
        return dict(response.json())


@pytest.fixture
def ctx() -> Context:
    return Context()


def proxy_client(proxy: InferenceProxy) -> httpx.Client:
    return httpx.Client(base_url="http://localhost", transport=httpx.HTTPTransport(uds=str(proxy.socket_path)))


def run_inference_job(ctx: Context, command: list[str], **sandbox: Any) -> None:
    body = {
        "version": 1,
        "task_id": TASK_ID,
        "job_id": JOB_ID,
        "sandbox": {"image": "", "command": command, "use_inference": True, **sandbox},
    }
    headers = {"Authorization": f"Bearer {WORKER_TOKEN}"}
    assert ctx.worker is not None, "no Worker API started in this scenario"
    ctx.response = ctx.worker.client().post("/v1/worker/jobs:run", json=body, headers=headers)


def listening_proxy_sockets() -> int:
    """Listening Unix sockets named like a job proxy's (the proxy binds through /proc/self/fd)."""
    lines = Path("/proc/net/unix").read_text().splitlines()[1:]
    listening_flag = 0x10000
    return sum(1 for line in lines if line.endswith("/inference.sock") and int(line.split()[3], 16) & listening_flag)


# Node and worker -------------------------------------------------------------------------------


@given("the node's inference backend is running")
def backend_running(ctx: Context, embedded_inference: NodeInference) -> None:
    ctx.inference = embedded_inference


@given("a Worker API on this node")
def worker_with_inference(ctx: Context, inference_worker: RunningWorker) -> None:
    ctx.worker = inference_worker


@given("a Worker API on a node without an inference backend")
def worker_without_inference(ctx: Context, worker_factory: WorkerFactory) -> None:
    ctx.worker = worker_factory()


@given("an inference proxy for a job in front of the node's backend")
def proxy_for_job(
    ctx: Context, inference_worker: RunningWorker, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    assert ctx.inference is not None
    upstream = ctx.inference.upstream()
    assert upstream is not None
    proxy = InferenceProxy(tmp_path / "inference.sock", upstream, job_id=JOB_ID)
    # Served from the Worker API's event loop, as the worker serves a job's proxy; stopped before
    # the worker is (finalizers run last-in, first-out).
    inference_worker.call(proxy.start())
    request.addfinalizer(lambda: inference_worker.call(proxy.stop()))
    ctx.worker, ctx.proxy = inference_worker, proxy


@given("a node with no inference service and no embedded model")
def node_without_backend(ctx: Context, podman_service: PodmanService, tmp_path: Path) -> None:
    settings = embedded_settings(backend="auto", embedded_model_path=tmp_path / "absent.gguf")
    ctx.node = NodeInference(settings, tmp_path, podman_url=podman_service.url)
    asyncio.run(ctx.node.report())


# Actions ---------------------------------------------------------------------------------------


@when("a request whose body is over 10 MiB is sent to the proxy")
def oversized_to_proxy(ctx: Context) -> None:
    assert ctx.proxy is not None
    with proxy_client(ctx.proxy) as client:
        ctx.response = client.post("/v1/chat/completions", content=b"x" * (MAX_REQUEST_BYTES + 1))


@when(parsers.re(r'a job using inference runs "(?P<command>.*)"$'))
def job_runs(ctx: Context, command: str) -> None:
    run_inference_job(ctx, ["sh", "-c", command])


@when(parsers.parse('a job using inference with env {name} "{value}" runs "{command}"'))
def job_with_env_runs(ctx: Context, name: str, value: str, command: str) -> None:
    run_inference_job(ctx, ["sh", "-c", command], env={name: value})


@when(parsers.parse('a job using inference asks the model "{prompt}" through its socket'))
def job_asks_model(ctx: Context, prompt: str) -> None:
    run_inference_job(ctx, ["python3", "-c", ASK_MODEL, prompt])


@when("a job using inference probes its proxy")
def job_probes_proxy(ctx: Context) -> None:
    run_inference_job(ctx, ["python3", "-c", PROBE_PROXY])


@when("a job using inference tries TCP connections to the host and the internet")
def job_tries_tcp(ctx: Context) -> None:
    run_inference_job(ctx, ["python3", "-c", TRY_TCP])


@when("the orchestrator decides the node's inference backend from its capability report")
def orchestrator_decides(ctx: Context) -> None:
    assert ctx.inference is not None
    ctx.node = ctx.inference


@when(parsers.parse('its config instructs an Ollama container from image "{image}"'))
def config_instructs_ollama(ctx: Context, image: str) -> None:
    assert ctx.node is not None
    try:
        asyncio.run(ctx.node.apply(InferenceBackend(enabled=True, variant="cpu", image=image)))
    except InferenceStartError as exc:
        ctx.apply_error = exc


# Outcomes --------------------------------------------------------------------------------------


@then(parsers.parse("the proxy answers with status {status:d}"))
def proxy_status(ctx: Context, status: int) -> None:
    assert ctx.answered().status_code == status, ctx.answered().text


@then("the proxy's socket file exists")
def proxy_socket_exists(ctx: Context) -> None:
    assert ctx.proxy is not None
    assert stat.S_ISSOCK(ctx.proxy.socket_path.stat().st_mode)


@then('GET /healthz over the proxy\'s socket answers 200 "ok"')
def proxy_healthz(ctx: Context) -> None:
    assert ctx.proxy is not None
    with proxy_client(ctx.proxy) as client:
        response = client.get("/healthz")
    assert (response.status_code, response.text) == (200, "ok")


@then("the job completes")
def job_completes(ctx: Context) -> None:
    result = ctx.result()
    assert (result["status"], result["exit_code"]) == ("completed", 0), result


@then(parsers.parse('the job\'s stdout contains "{text}"'))
def stdout_contains(ctx: Context, text: str) -> None:
    assert text in ctx.result()["stdout"], ctx.result()


@then("the job's environment has INFERENCE_PROXY_URL with the http+unix scheme")
def env_has_unix_url(ctx: Context) -> None:
    env = dict(line.split("=", 1) for line in ctx.result()["stdout"].splitlines() if "=" in line)
    assert env["INFERENCE_PROXY_URL"].startswith("http+unix://"), env


@then("the job's environment has no OLLAMA_BASE_URL with a TCP address")
def env_has_no_tcp_url(ctx: Context) -> None:
    stdout = ctx.result()["stdout"]
    assert "OLLAMA_BASE_URL" not in stdout
    assert "http://" not in stdout
    assert "https://" not in stdout


@then("the job printed status 200 and a non-empty answer")
def model_answered(ctx: Context) -> None:
    status, _, answer = ctx.result()["stdout"].partition("\n")
    assert status == "200", ctx.result()
    assert answer.strip(), ctx.result()


@then("every TCP connection attempt of the job failed")
def tcp_blocked(ctx: Context) -> None:
    attempts = [line for line in ctx.result()["stdout"].splitlines() if line.startswith(("connected", "blocked"))]
    assert len(attempts) == 4
    assert all(line.startswith("blocked") for line in attempts), attempts


@then("the job's only network interface is the loopback")
def only_loopback(ctx: Context) -> None:
    assert "interfaces ['lo']" in ctx.result()["stdout"]


@then("the job's proxy socket no longer exists on the host")
def proxy_gone(ctx: Context) -> None:
    assert ctx.worker is not None
    assert not (ctx.worker.service.settings.mount_root / JOB_ID / "run" / "inference.sock").exists()
    assert listening_proxy_sockets() == 0


@then(parsers.parse('the Worker API refuses the job with status {status:d} mentioning "{text}"'))
def refused(ctx: Context, status: int, text: str) -> None:
    assert ctx.answered().status_code == status, ctx.answered().text
    assert text in ctx.answered().json()["detail"]


@then("the node is told to start no inference container")
def no_container_instruction(ctx: Context) -> None:
    assert ctx.node is not None
    info = asyncio.run(ctx.node.report())
    assert info.existing_service
    assert info.running
    assert info.available_models
    assert orchestrator_instruction(info) is None


@then(parsers.parse('applying the config fails with an error naming "{image}"'))
def apply_failed(ctx: Context, image: str) -> None:
    assert ctx.apply_error is not None, "apply() did not fail"
    assert image in str(ctx.apply_error)
    assert ctx.node is not None
    assert ctx.node.upstream() is None
