"""Acceptance: node registration, capability reports, config delivery and acks over real HTTP.

Covers features/orchestrator/node_registration_and_config.feature and
features/nodes/node_control_plane_guarantees.feature against a real database.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from cynode.contracts.codec import convert, to_json_object
from cynode.contracts.nodes import NodeCapabilityReport
from cynode.nodes.capabilities import capability_hash
from cynode.settings import Role
from tests.fixtures.nodes import (
    CUDA_DEVICE,
    NODE_PSK,
    LazyControlPlane,
    NodeClient,
    altered_report,
    capability_report,
    configured_node,
    now_rfc3339,
)

scenarios(
    "orchestrator/node_registration_and_config.feature",
    "nodes/node_control_plane_guarantees.feature",
)

DB = psycopg.Connection[dict[str, Any]]
ULID_CHARS = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
SMALL_BODY_LIMIT = 2048


@dataclass
class World:
    control_plane: LazyControlPlane
    db: DB
    caplog: pytest.LogCaptureFixture
    node: NodeClient | None = None
    report: dict[str, Any] | None = None
    response: httpx.Response | None = None
    config_versions: list[str] = field(default_factory=list)
    recorded_hashes: dict[str, str] = field(default_factory=dict)

    @property
    def http(self) -> httpx.Client:
        return self.control_plane.stack.client(Role.ORCHESTRATOR)

    @property
    def current(self) -> NodeClient:
        assert self.node is not None, "no node in this scenario yet"
        return self.node

    @property
    def answer(self) -> httpx.Response:
        assert self.response is not None, "no request was made in this scenario"
        return self.response

    def new_node(self, slug: str, **report_options: Any) -> NodeClient:
        self.node = NodeClient(self.http, slug)
        self.report = capability_report(slug, **report_options)
        return self.node

    def register(self, slug: str, **report_options: Any) -> NodeClient:
        node = self.new_node(slug, **report_options)
        self.response = node.register(self.report)
        assert self.response.status_code in (200, 201), self.response.text
        self.recorded_hashes[slug] = self.node_row(slug)["capability_hash"]
        return node

    def fetch_config(self) -> dict[str, Any]:
        config = self.current.fetch_config()
        self.config_versions.append(config["config_version"])
        return config

    @property
    def config(self) -> dict[str, Any]:
        assert self.current.config is not None, "the node has not fetched its configuration"
        return self.current.config

    def node_row(self, slug: str) -> dict[str, Any]:
        row = self.db.execute("SELECT * FROM nodes WHERE node_slug = %s", (slug,)).fetchone()
        assert row is not None, f"no node row for {slug}"
        return row

    def count(self, query: str) -> int:
        row = self.db.execute(query).fetchone()
        assert row is not None
        return int(row["n"])


@pytest.fixture
def world(lazy_control_plane: LazyControlPlane, db: DB, caplog: pytest.LogCaptureFixture) -> World:
    return World(lazy_control_plane, db, caplog)


# --- Given ---


@given("the control plane runs on its own fresh database")
def fresh_control_plane(world: World) -> None:
    assert world.count("SELECT count(*) AS n FROM nodes") == 0


@given(parsers.parse('a node "{slug}" that knows the registration PSK'))
def node_with_psk(world: World, slug: str) -> None:
    world.new_node(slug)


@given(parsers.parse('a node "{slug}" that knows the registration PSK and serves its Worker API at "{url}"'))
def node_with_worker_url(world: World, slug: str, url: str) -> None:
    world.new_node(slug, worker_api_url=url)


@given(parsers.parse('"{slug}" has registered'))
def registered_node(world: World, slug: str) -> None:
    world.register(slug)


@given(parsers.parse('"{slug}" has registered and fetched its configuration'))
def registered_and_configured(world: World, slug: str) -> None:
    world.register(slug)
    world.fetch_config()


@given("the node has registered reporting inference supported and no existing service")
def registered_inference_capable(world: World) -> None:
    world.register(world.current.slug, inference_supported=True, existing_service=False)


@given(parsers.parse('the orchestrator setting "{key}" is "{value}"'))
def orchestrator_setting(world: World, key: str, value: str) -> None:
    assert not world.control_plane.started, "settings must be given before the control plane starts"
    world.control_plane.overrides[key] = value


REPORTS: dict[str, dict[str, Any]] = {
    "inference supported": {},
    "a GPU with cuda_capability": {"gpu_devices": [CUDA_DEVICE]},
    "an existing inference service": {"existing_service": True, "inference_running": True},
    "the label sandbox_only": {"labels": ["sandbox_only"]},
}


@given(parsers.parse('the node has registered as "{slug}" reporting {report}'))
def registered_with_report(world: World, slug: str, report: str) -> None:
    world.register(slug, **REPORTS[report])


@given("the control plane logs everything")
def log_everything(world: World) -> None:
    world.caplog.set_level(logging.DEBUG)


# --- When ---


@when("the node registers")
def node_registers(world: World) -> None:
    world.response = world.current.register(world.report)


@when("the node registers and then fetches its configuration")
def registers_then_fetches(world: World) -> None:
    node_registers(world)
    assert world.answer.status_code in (200, 201), world.answer.text
    world.fetch_config()


@when("the node sends a changed capability report")
def sends_changed_report(world: World) -> None:
    world.report = capability_report(world.current.slug, inference_running=True, available_models=["tinyllama"])
    world.response = world.current.report(world.report)
    assert world.answer.status_code == 204, world.answer.text


@when(parsers.parse('the node sends a capability report for "{slug}"'))
def sends_report_for(world: World, slug: str) -> None:
    world.response = world.current.report(capability_report(slug, worker_api_url="http://attacker.example:1"))


@when(parsers.parse('the node acknowledges that configuration with status "{status}"'))
def acknowledges(world: World, status: str) -> None:
    world.response = world.current.ack(status)


@when(parsers.parse('the node acknowledges that configuration with status "{status}" as node "{slug}"'))
def acknowledges_as(world: World, status: str, slug: str) -> None:
    world.response = world.current.ack(status, node_slug=slug)


@when("the configuration is requested without a node JWT")
def config_without_jwt(world: World) -> None:
    world.response = world.http.get("/v1/nodes/config")


@when("the configuration is requested with a user access token")
def config_with_user_token(world: World) -> None:
    context = world.control_plane.stack.stack.context
    assert context is not None
    token = context.signer.issue("access", "0b6f0c36-4d1e-4c1d-9c55-41b8a2f1e0aa", timedelta(minutes=5), handle="x")
    world.response = world.http.get("/v1/nodes/config", headers={"Authorization": f"Bearer {token.token}"})


@when("the node fetches its configuration")
def fetches_config(world: World) -> None:
    world.fetch_config()


@when("the node fetches its configuration twice")
def fetches_config_twice(world: World) -> None:
    world.fetch_config()
    world.fetch_config()


@when(parsers.re(r'node "(?P<slug>[^"]+)" registers with the PSK "(?P<psk>[^"]*)"'))
def registers_with_psk(world: World, slug: str, psk: str) -> None:
    world.response = world.new_node(slug).register(psk=psk)


def _registration_with(path: str, value: Any) -> bytes:
    return json.dumps({"psk": NODE_PSK, "capability": altered_report("flawed", path, value)}).encode()


FLAWED_REGISTRATIONS: dict[str, bytes] = {
    "body is not JSON": b'{"psk": ',
    "capability is missing": json.dumps({"psk": NODE_PSK}).encode(),
    "capability has version 2": _registration_with("version", 2),
    "compute.cpu_cores is a string": _registration_with("compute.cpu_cores", "many"),
    "node slug is missing": _registration_with("node.node_slug", ...),
    "body is larger than the body limit": _registration_with("node.name", "n" * SMALL_BODY_LIMIT),
}


@when(parsers.parse("a registration is sent whose {flaw}"))
def flawed_registration(world: World, flaw: str) -> None:
    if flaw == "body is larger than the body limit":
        world.control_plane.overrides["control_plane.max_request_bytes"] = SMALL_BODY_LIMIT
    world.response = world.http.post(
        "/v1/nodes/register", content=FLAWED_REGISTRATIONS[flaw], headers={"Content-Type": "application/json"}
    )


@when(parsers.parse('node "{slug}" registers, fetches its configuration and acknowledges it'))
def fully_configured(world: World, slug: str) -> None:
    world.node = configured_node(world.control_plane.stack, slug)


@when(parsers.parse('the operator sets "{key}" to "{value}" and restarts the orchestrator'))
def restart_with(world: World, key: str, value: str) -> None:
    world.current.http = world.control_plane.restart(**{key: value}).client(Role.ORCHESTRATOR)


def _ack_with(world: World, flaw: str) -> bytes:
    body: dict[str, Any] = {
        "version": 1,
        "node_slug": world.current.slug,
        "config_version": world.config["config_version"],
        "ack_at": now_rfc3339(),
        "status": "applied",
    }
    if flaw == "body is not JSON":
        return b"status=applied"
    changes: dict[str, dict[str, Any]] = {
        "version is 2": {"version": 2},
        'status is "rolled_back"': {"status": "rolled_back"},
        'node_slug is "other-node"': {"node_slug": "other-node"},
    }
    return json.dumps({**body, **changes[flaw]}).encode()


@when(parsers.parse("the node sends an acknowledgement whose {flaw}"))
def flawed_ack(world: World, flaw: str) -> None:
    headers = {**world.current.auth, "Content-Type": "application/json"}
    world.response = world.http.post("/v1/nodes/config", content=_ack_with(world, flaw), headers=headers)


# --- Then ---


@then("the node holds a node JWT")
def holds_jwt(world: World) -> None:
    assert world.answer.status_code == 201, world.answer.text
    context = world.control_plane.stack.stack.context
    assert context is not None
    claims = context.signer.verify(world.current.jwt, "node")
    assert claims["node_slug"] == world.current.slug


@then(parsers.parse('the database has a node row for "{slug}"'))
def node_row_exists(world: World, slug: str) -> None:
    assert world.node_row(slug)["status"] == "active"


@then(parsers.parse('the dispatch URL recorded for "{slug}" is "{url}"'))
def dispatch_url_recorded(world: World, slug: str, url: str) -> None:
    assert world.node_row(slug)["worker_api_target_url"] == url


@then(parsers.parse('that report is the latest capability snapshot of "{slug}"'))
def latest_snapshot(world: World, slug: str) -> None:
    row = world.db.execute(
        """
        SELECT c.capability_snapshot FROM node_capabilities c JOIN nodes n ON n.id = c.node_id
        WHERE n.node_slug = %s ORDER BY c.created_at DESC LIMIT 1
        """,
        (slug,),
    ).fetchone()
    assert row is not None
    assert row["capability_snapshot"] == to_json_object(convert(world.report or {}, NodeCapabilityReport))


@then(parsers.parse('the capability hash of "{slug}" matches that report'))
def hash_matches(world: World, slug: str) -> None:
    expected = capability_hash(convert(world.report or {}, NodeCapabilityReport))
    assert world.node_row(slug)["capability_hash"] == expected
    assert expected != world.recorded_hashes[slug]


@then(parsers.parse('the configuration is addressed to "{slug}"'))
def config_addressed_to(world: World, slug: str) -> None:
    assert world.config["node_slug"] == slug


@then("the configuration has a ULID config_version and a Worker API bearer token")
def config_has_version_and_token(world: World) -> None:
    version = world.config["config_version"]
    assert len(version) == 26
    assert set(version) <= ULID_CHARS
    assert world.config["worker_api"]["orchestrator_bearer_token"]


@then(parsers.parse('the ack status of "{slug}" is "{status}"'))
def ack_status_is(world: World, slug: str, status: str) -> None:
    assert world.answer.status_code == 204, world.answer.text
    assert world.node_row(slug)["config_ack_status"] == status


@then(parsers.parse('the acknowledged config_version of "{slug}" is the one it fetched'))
def acked_version_is_fetched(world: World, slug: str) -> None:
    row = world.node_row(slug)
    assert row["config_ack_version"] == world.config["config_version"] == row["config_version"]


@then(parsers.parse("the answer is a {status:d} problem"))
def answer_is_problem(world: World, status: int) -> None:
    assert world.answer.status_code == status, world.answer.text
    assert world.answer.headers["content-type"].startswith("application/problem+json")
    assert world.answer.json()["status"] == status


@then("the configuration tells the node to start an inference backend")
def config_starts_backend(world: World) -> None:
    assert world.config["inference_backend"]["enabled"] is True


@then("nothing is stored about nodes")
def nothing_stored(world: World) -> None:
    assert world.count("SELECT count(*) AS n FROM nodes") == 0
    assert world.count("SELECT count(*) AS n FROM node_capabilities") == 0


@then(parsers.parse('the capability snapshot of "{slug}" is unchanged'))
def snapshot_unchanged(world: World, slug: str) -> None:
    row = world.node_row(slug)
    assert row["capability_hash"] == world.recorded_hashes[slug]
    assert row["worker_api_target_url"] != "http://attacker.example:1"
    history = world.db.execute("SELECT count(*) AS n FROM node_capabilities WHERE node_id = %s", (row["id"],))
    assert history.fetchone() == {"n": 1}


def _log_lines(world: World) -> list[str]:
    return [record.getMessage() + json.dumps(vars(record), default=str) for record in world.caplog.records]


def _assert_secret_only_in(world: World, secret: str, allowed: httpx.Response | None) -> None:
    for response in world.current.responses:
        if response is not allowed:
            assert secret not in response.text, f"secret leaked in {response.request.method} {response.request.url}"
    assert allowed is None or secret in allowed.text
    lines = _log_lines(world)
    assert lines, "the control plane logged nothing"
    assert not [line for line in lines if secret in line]


@then("the PSK appears in no response and no log line")
def psk_nowhere(world: World) -> None:
    _assert_secret_only_in(world, NODE_PSK, None)


@then("the node JWT appears only in the registration response and in no log line")
def jwt_only_in_bootstrap(world: World) -> None:
    _assert_secret_only_in(world, world.current.jwt, world.current.responses[0])


@then("the Worker API bearer token appears only in the configuration response and in no log line")
def token_only_in_config(world: World) -> None:
    _assert_secret_only_in(world, world.config["worker_api"]["orchestrator_bearer_token"], world.current.responses[1])


@then(parsers.parse('the bearer token column of "{slug}" holds ciphertext that opens to that token'))
def token_column_is_ciphertext(world: World, slug: str) -> None:
    token = world.config["worker_api"]["orchestrator_bearer_token"]
    row = world.node_row(slug)
    sealed = bytes(row["worker_api_bearer_token_ciphertext"])
    assert token.encode() not in sealed
    context = world.control_plane.stack.stack.context
    assert context is not None
    assert context.secret_box.open(sealed, associated_data=str(row["id"])) == token


@then("both fetches carry the same config_version")
def same_version_twice(world: World) -> None:
    first, second = world.config_versions[-2:]
    assert first == second


@then("the config_version is a new ULID that sorts after the previous one")
def later_version(world: World) -> None:
    previous, latest = world.config_versions[-2:]
    assert len(latest) == 26
    assert set(latest) <= ULID_CHARS
    assert latest > previous


@then(parsers.parse('the configuration tells the node to start "{image}"'))
def config_starts_image(world: World, image: str) -> None:
    backend = world.config["inference_backend"]
    assert (backend["enabled"], backend["image"]) == (True, image)


@then(parsers.re(r"the inference backend instruction is (?P<instruction>.+)"))
def inference_instruction(world: World, instruction: str) -> None:
    backend = world.config.get("inference_backend")
    if instruction == "absent":
        assert backend is None
        return
    assert backend is not None
    assert backend["enabled"] is True
    variant, _, image = instruction.removeprefix("variant ").partition(" with ")
    assert backend["variant"] == variant
    if image:
        assert backend["image"] == image.strip('"')


@then(parsers.parse('no ack is recorded for "{slug}"'))
def no_ack(world: World, slug: str) -> None:
    row = world.node_row(slug)
    assert (row["config_ack_status"], row["config_ack_version"], row["config_ack_at"]) == (None, None, None)
