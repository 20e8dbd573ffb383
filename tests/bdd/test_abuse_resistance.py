"""Acceptance: abuse resistance (features/identity/abuse_resistance.feature).

Clients pick their source address among loopback addresses (all of 127.0.0.0/8 reaches the
gateway), so every scenario, the real ``cynode serve`` ones included, can speak from many sources
without a proxy in front.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row
from pytest_bdd import given, parsers, scenarios, then, when

from cynode.context import OrchestratorContext
from cynode.contracts.identity import LoginRequest
from cynode.db.embedded import EmbeddedPostgres
from cynode.http.problems import ProblemError
from cynode.identity.audit import ClientInfo
from cynode.identity.service import IdentityService
from cynode.settings import Role
from tests.fixtures.identity import (
    ADMIN_HANDLE,
    ADMIN_PASSWORD,
    IDENTITY_ENV,
    IDENTITY_ROLES,
    USER_PASSWORD,
    Session,
    assert_problem,
    bearer,
    create_user,
    login,
)
from tests.fixtures.nodes import NodeClient, capability_report, configured_node, node_client, start_control_plane
from tests.fixtures.podman import WorkerFactory
from tests.fixtures.serve import CYNODE, Serve
from tests.fixtures.stack import RunningStack, StackFactory
from tests.fixtures.tasks import start_task_stack, task_api, worker_node

scenarios("identity/abuse_resistance.feature")

WRONG_PASSWORD = "not-the-password"
# Long enough that a slowed-down handle stays slowed down for the rest of a scenario.
DELAY_SETTINGS = {"identity.login_delay_initial_seconds": 60}
JWT_SECRET = "abuse-resistance-jwt-secret-0123456789abcdef"


@dataclass
class Gateway:
    """The user API under test, reachable from any loopback source address."""

    base_url: str
    dsn: str
    context: OrchestratorContext | None = None
    """The in-process stack's context; None for a real ``cynode serve``."""
    _clients: dict[str, httpx.Client] = field(default_factory=dict)

    def client(self, address: str = "127.0.0.1") -> httpx.Client:
        if address not in self._clients:
            transport = httpx.HTTPTransport(local_address=address)
            self._clients[address] = httpx.Client(base_url=self.base_url, transport=transport, timeout=60)
        return self._clients[address]

    def login(self, handle: str, password: str, address: str = "127.0.0.1") -> httpx.Response:
        return self.client(address).post("/v1/auth/login", json={"handle": handle, "password": password})

    def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        with psycopg.connect(self.dsn, autocommit=True, row_factory=dict_row) as conn:
            return conn.execute(statement, params).fetchall()  # type: ignore[arg-type]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


@dataclass
class World:
    gateway: Gateway | None = None
    stack: RunningStack | None = None
    serve: Serve | None = None
    data_dir: Path | None = None
    response: httpx.Response | None = None
    median_seconds: float | None = None
    audit_rows_before: int = 0
    node: NodeClient | None = None
    node_row: dict[str, Any] | None = None
    held: list[socket.socket] = field(default_factory=list)

    @property
    def target(self) -> Gateway:
        assert self.gateway is not None, "no gateway in this scenario"
        return self.gateway

    @property
    def running(self) -> RunningStack:
        assert self.stack is not None, "no in-process stack in this scenario"
        return self.stack


@pytest.fixture
def world() -> Iterator[World]:
    state = World()
    yield state
    for held in state.held:
        held.close()
    if state.gateway is not None:
        state.gateway.close()
    if state.serve is not None and state.serve.process.poll() is None:
        state.serve.terminate()


def attack_address(number: int) -> str:
    return f"127.0.1.{number + 1}"


# Gateways


def in_process_gateway(world: World, stack: RunningStack, fresh_dsn: str) -> None:
    world.stack = stack
    world.gateway = Gateway(stack.url(Role.GATEWAY), fresh_dsn, stack.stack.context)


@given("a gateway")
def a_gateway(world: World, stack_factory: StackFactory, fresh_dsn: str) -> None:
    in_process_gateway(world, stack_factory(IDENTITY_ROLES, env=IDENTITY_ENV, overrides=DELAY_SETTINGS), fresh_dsn)


@given(parsers.parse("a gateway that locks out a source after {failures:d} failed logins"))
def a_gateway_locking_early(world: World, stack_factory: StackFactory, fresh_dsn: str, failures: int) -> None:
    # Few judged (password-hashing) attempts before the flood is all refusals: the run stays short.
    overrides = {**DELAY_SETTINGS, "identity.login_failures_before_lockout": failures}
    in_process_gateway(world, stack_factory(IDENTITY_ROLES, env=IDENTITY_ENV, overrides=overrides), fresh_dsn)


@given("a real cynode serve gateway")
def a_real_gateway(world: World, data_dir: Path) -> None:
    env = {
        **IDENTITY_ENV,
        "CYNODE_JWT_SECRET": JWT_SECRET,
        "CYNODE_IDENTITY_LOGIN_DELAY_INITIAL_SECONDS": "60",
    }
    serve = Serve(data_dir, roles=IDENTITY_ROLES, env=env)
    world.serve, world.data_dir = serve, data_dir
    serve.wait_healthy()
    pid_file = (data_dir / "postgres" / "postmaster.pid").read_text(encoding="utf-8").splitlines()
    dsn = EmbeddedPostgres(data_dir).dsn(Path(pid_file[4]))
    world.gateway = Gateway(serve.url(serve.gateway, ""), dsn)


@given(parsers.parse('the user "{handle}" exists'))
def user_exists(world: World, handle: str) -> None:
    create_user(world.target.client(), login(world.target.client(), ADMIN_HANDLE, ADMIN_PASSWORD), handle)


# Lockout


@given(parsers.parse("the admin has logged in from {address}"))
@then(parsers.parse("the admin can log in from {address}"))
def admin_logs_in(world: World, address: str) -> None:
    response = world.target.login(ADMIN_HANDLE, ADMIN_PASSWORD, address)
    assert response.status_code == 200, response.text


@when(parsers.parse('"{handle}" is tried with a wrong password {count:d} times from {addresses:d} addresses'))
def wrong_passwords(world: World, handle: str, count: int, addresses: int) -> None:
    statuses = Counter(
        world.target.login(handle, WRONG_PASSWORD, attack_address(number % addresses)).status_code
        for number in range(count)
    )
    assert set(statuses) == {401, 429}, statuses


@then(parsers.parse('logging in as "{handle}" from the new address {address} is refused with 429'))
def new_address_refused(world: World, handle: str, address: str) -> None:
    password = ADMIN_PASSWORD if handle == ADMIN_HANDLE else USER_PASSWORD
    response = world.target.login(handle, password, address)
    assert assert_problem(response, 429)["detail"] == "Too many login attempts; try again later"
    assert int(response.headers["Retry-After"]) > 1


@then("the lockouts are audited")
def lockouts_audited(world: World) -> None:
    rows = world.target.query(
        "SELECT reason FROM auth_audit_log WHERE event_type = 'lockout_started' AND subject_handle = %s",
        (ADMIN_HANDLE,),
    )
    assert rows
    assert all(row["reason"].startswith(("slowed down for", "locked out for")) for row in rows)


@when(parsers.parse('the admin unlocks "{handle}"'))
def admin_unlocks(world: World, handle: str) -> None:
    admin = world.target.client("127.0.10.10")
    session = login(admin, ADMIN_HANDLE, ADMIN_PASSWORD)
    [user] = world.target.query("SELECT id FROM users WHERE handle = %s", (handle,))
    response = admin.post(f"/v1/users/{user['id']}/unlock", headers=session.headers)
    assert response.status_code == 200, response.text
    assert response.json()["handle"] == handle


@then(parsers.parse('"{handle}" can log in from {address}'))
def user_logs_in(world: World, handle: str, address: str) -> None:
    response = world.target.login(handle, USER_PASSWORD, address)
    assert response.status_code == 200, response.text


@when(parsers.parse('I run "cynode user unlock {handle}" on the host'))
def host_unlock(world: World, handle: str) -> None:
    assert world.data_dir is not None
    completed = subprocess.run(
        [*CYNODE, "user", "unlock", handle, "--data-dir", str(world.data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == f"unlocked {handle}"


@then(parsers.parse('the unlock is audited as done by "{by}"'))
def unlock_audited(world: World, by: str) -> None:
    rows = world.target.query("SELECT subject_handle, reason FROM auth_audit_log WHERE event_type = 'lockout_cleared'")
    assert [row["reason"] for row in rows] == [f"by {by}"]


# Flood


def median_login_seconds(world: World, handle: str, count: int) -> float:
    client = world.target.client()
    durations = []
    for _ in range(count):
        started = time.perf_counter()
        login(client, handle, USER_PASSWORD)
        durations.append(time.perf_counter() - started)
    return statistics.median(durations)


@when(parsers.parse('I measure the median time of {count:d} logins of "{handle}"'))
def measure_logins(world: World, count: int, handle: str) -> None:
    world.median_seconds = median_login_seconds(world, handle, count)
    world.audit_rows_before = world.target.query("SELECT count(*) AS n FROM auth_audit_log")[0]["n"]


async def refused_logins(service: IdentityService, numbers: range, addresses: int) -> Counter[int]:
    """Wrong logins for unknown handles, 16 at a time, straight to the service; their statuses."""
    gate = asyncio.Semaphore(16)

    async def attempt(number: int) -> int:
        request = LoginRequest(handle=f"flood-{number % 97}", password=WRONG_PASSWORD)
        client = ClientInfo(ip=f"192.0.2.{number % addresses + 1}", user_agent="flood")
        async with gate:
            try:
                await service.login(request, client)
            except ProblemError as refused:
                return refused.status
        return 200

    return Counter(await asyncio.gather(*(attempt(number) for number in numbers)))


@when(parsers.parse("{count:d} refused logins arrive from {addresses:d} addresses"))
def flood(world: World, count: int, addresses: int) -> None:
    context = world.target.context
    assert context is not None
    service = IdentityService(context.pool, context.signer, context.settings.identity)
    statuses: Counter[int] = Counter()
    batch = 2000
    for start in range(0, count, batch):
        numbers = range(start, min(count, start + batch))
        statuses += world.running.run(refused_logins(service, numbers, addresses))
    assert set(statuses) == {401, 429}, statuses
    assert statuses.total() == count


@then(parsers.parse('the median time of {count:d} logins of "{handle}" is within {factor:d} times the first'))
def logins_as_fast(world: World, count: int, handle: str, factor: int) -> None:
    assert world.median_seconds is not None
    after = median_login_seconds(world, handle, count)
    assert after <= factor * world.median_seconds, (after, world.median_seconds)


@then("the audit log grew by at most its threshold per address and minute")
def audit_bounded(world: World) -> None:
    context = world.target.context
    assert context is not None
    threshold = context.settings.identity.audit_refusals_per_minute_per_source
    [counted] = world.target.query(
        "SELECT count(*) AS buckets FROM auth_refusal_counts WHERE source <<= '192.0.2.0/24'"
    )
    [audited] = world.target.query("SELECT count(*) AS n FROM auth_audit_log")
    grown = audited["n"] - world.audit_rows_before
    judged = context.settings.identity.login_failures_before_lockout * 2  # a burst overshoots a little
    # Stored refusals, plus at most a lockout event per judged failure.
    assert grown <= threshold * counted["buckets"] + judged * 5, (grown, counted["buckets"])


@then("the refusals were counted")
def refusals_counted(world: World) -> None:
    [row] = world.target.query("SELECT sum(refusals) AS total FROM auth_refusal_counts WHERE source <<= '192.0.2.0/24'")
    assert row["total"] >= 20000


# Handles


@when(parsers.parse("I log in with a handle of {length:d} characters"))
def long_handle(world: World, length: int) -> None:
    world.response = world.target.login("h" * length, WRONG_PASSWORD)


@when("I log in with a handle holding an escape sequence")
def escape_handle(world: World) -> None:
    world.response = world.target.login("adm\x1b[2Jin", WRONG_PASSWORD)


@then(parsers.parse("the response is a {status:d} problem"))
def problem_response(world: World, status: int) -> None:
    assert world.response is not None
    assert_problem(world.response, status)


@when(parsers.parse('I log in with the unknown handle "{handle}"'))
def unknown_handle(world: World, handle: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    assert_problem(world.target.login(handle, WRONG_PASSWORD), 401)


@then(parsers.parse('no audit row and no log line holds "{text}"'))
def nowhere_stored(world: World, text: str, caplog: pytest.LogCaptureFixture) -> None:
    rows = world.target.query("SELECT * FROM auth_audit_log")
    assert any(row["reason"] == "user not found" for row in rows)
    assert text not in repr(rows)
    ours = [record for record in caplog.records if record.name.startswith("cynode")]
    assert any(getattr(record, "reason", None) == "user not found" for record in ours)
    assert all(text not in repr(record.__dict__) for record in ours)


# Nodes


@given(parsers.parse('a task stack with a real worker node "{slug}"'))
def task_stack_with_worker(
    world: World, stack_factory: StackFactory, fresh_dsn: str, worker_factory: WorkerFactory, slug: str
) -> None:
    in_process_gateway(world, start_task_stack(stack_factory), fresh_dsn)
    world.node = worker_node(world.running, worker_factory(), slug)


def node_row(world: World, slug: str) -> dict[str, Any]:
    [row] = world.target.query(
        "SELECT worker_api_target_url, worker_api_bearer_token_ciphertext, node_secret_hash FROM nodes "
        "WHERE node_slug = %s",
        (slug,),
    )
    return row


@when(parsers.parse('someone with the PSK registers "{slug}" at "{url}" without its node secret'))
def intruder_registers(world: World, slug: str, url: str) -> None:
    world.node_row = node_row(world, slug)
    intruder = node_client(world.running, slug)
    world.response = intruder.register(capability_report(slug, worker_api_url=url))


@then(parsers.parse("the registration is refused with {status:d}"))
def registration_refused(world: World, status: int) -> None:
    assert world.response is not None
    problem = assert_problem(world.response, status)
    assert "node_secret" in problem["detail"]
    assert "node_jwt" not in world.response.text


@then("the refusal is audited")
def refusal_audited(world: World) -> None:
    rows = world.target.query(
        "SELECT subject_handle, success, host(ip_address) AS ip FROM auth_audit_log "
        "WHERE event_type = 'node_registration_refused'"
    )
    assert rows == [{"subject_handle": "real-node", "success": False, "ip": "127.0.0.1"}]


@then(parsers.parse('"{slug}" keeps its Worker API URL and token'))
def node_unchanged(world: World, slug: str) -> None:
    assert node_row(world, slug) == world.node_row


@then(parsers.parse('a task runs to completion on "{slug}"'))
def task_on_real_node(world: World, slug: str) -> None:
    tasks = task_api(world.running)
    created = tasks.create("echo still mine", input_mode="commands")
    assert tasks.wait_for_status(created["id"])["status"] == "completed"
    [job] = tasks.result(created["id"])["jobs"]
    assert job["node_slug"] == slug
    assert job["result"]["stdout"] == "still mine\n"


@given(parsers.parse('a gateway with a registered and configured node "{slug}"'), target_fixture="gateway")
def gateway_with_node(world: World, stack_factory: StackFactory, fresh_dsn: str, slug: str) -> httpx.Client:
    stack = start_control_plane(stack_factory, env={"CYNODE_ADMIN_PASSWORD": ADMIN_PASSWORD})
    in_process_gateway(world, stack, fresh_dsn)
    world.node = configured_node(stack, slug)
    return world.target.client()


@when(parsers.parse('"{slug}" registers again with its node secret'))
def registers_again(world: World, slug: str) -> None:
    assert world.node is not None
    assert world.node.config is not None
    world.node_row = {"token": world.node.config["worker_api"]["orchestrator_bearer_token"]}
    assert world.node.register(capability_report(slug)).status_code == 200


@then("its next config carries a new Worker API token")
def token_rotated(world: World) -> None:
    assert world.node is not None
    assert world.node_row is not None
    config = world.node.fetch_config()
    assert config["worker_api"]["orchestrator_bearer_token"] != world.node_row["token"]
    assert world.node.ack("applied").status_code == 204


@when(parsers.parse('the admin rotates the Worker API token of "{slug}"'))
def admin_rotates(world: World, session: Session, slug: str) -> None:
    assert world.node is not None
    assert world.node.config is not None
    world.node_row = {"token": world.node.config["worker_api"]["orchestrator_bearer_token"]}
    response = world.target.client().post(f"/v1/nodes/{slug}/rotate_worker_token", headers=session.headers)
    assert response.status_code == 204, response.text
    [audited] = world.target.query(
        "SELECT subject_handle, reason FROM auth_audit_log WHERE event_type = 'worker_token_rotated'"
    )
    assert audited == {"subject_handle": slug, "reason": "by admin"}


@then("the node's next heartbeat is refused with 401")
def heartbeat_refused(world: World) -> None:
    assert world.node is not None
    assert_problem(world.node.heartbeat(), 401)


@then("the node token is refused by the user API with 401")
def node_token_on_user_api(world: World) -> None:
    assert world.node is not None
    assert_problem(world.target.client().get("/v1/users/me", headers=world.node.auth), 401)


@then("my user token is refused by the control plane with 401")
def user_token_on_control_plane(world: World, session: Session) -> None:
    control_plane = world.running.client(Role.ORCHESTRATOR)
    assert_problem(control_plane.get("/v1/nodes/config", headers=bearer(session.access_token)), 401)


# Server limits and the database server's environment


@when(parsers.parse("a client holds {count:d} half-open connections"))
def half_open_connections(world: World, count: int) -> None:
    assert world.serve is not None
    for _ in range(count):
        held = socket.create_connection(("127.0.0.1", world.serve.gateway))
        held.sendall(b"POST /v1/auth/login HTTP/1.1\r\nHost: slow\r\nContent-Type: application/json\r\n")
        world.held.append(held)


def server_processes(postmaster: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text(encoding="utf-8").rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == postmaster:
            children.append(int(stat.parent.name))
    return [postmaster, *children]


@then("no process of its PostgreSQL server has a CYNODE variable in its environment")
def clean_server_environment(world: World) -> None:
    assert world.data_dir is not None
    postmaster = int((world.data_dir / "postgres" / "postmaster.pid").read_text(encoding="utf-8").split()[0])
    processes = server_processes(postmaster)
    assert len(processes) > 1  # the postmaster and its background workers
    for pid in processes:
        environment = Path(f"/proc/{pid}/environ").read_bytes()
        assert b"CYNODE" not in environment, pid
        assert JWT_SECRET.encode() not in environment
        assert ADMIN_PASSWORD.encode() not in environment
