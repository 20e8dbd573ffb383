"""The admin API against a real gateway, orchestrator and PostgreSQL: users, nodes, settings, credentials."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg
import pytest

from cynode.admin.system_settings import SETTINGS
from cynode.http.paging import OFFSET_REFUSED
from cynode.nodes.readiness import EXTERNAL_KEYS_UNUSED, NO_EXTERNAL_PATH, NO_INFERENCE_PATH
from cynode.settings import Role
from tests.fixtures.identity import Session, assert_problem
from tests.fixtures.nodes import PM_MODEL, capability_report, configured_node
from tests.fixtures.stack import RunningStack

DB = psycopg.Connection[dict[str, Any]]
EXECUTION_MODE = "agents.project_manager.model.selection.execution_mode"
SECRET = "sk-test-provider-secret-5c1d"

# Every admin route, with a body that would be valid for an admin.
ADMIN_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/users", None),
    ("GET", f"/v1/users/{uuid.uuid4()}", None),
    ("GET", "/v1/nodes", None),
    ("GET", "/v1/nodes/any-node", None),
    ("POST", "/v1/nodes/any-node/enable", None),
    ("POST", "/v1/nodes/any-node/disable", None),
    ("POST", "/v1/nodes/any-node/drain", None),
    ("GET", "/v1/settings", None),
    ("GET", f"/v1/settings/{EXECUTION_MODE}", None),
    ("PUT", f"/v1/settings/{EXECUTION_MODE}", {"value": "force_local"}),
    ("GET", "/v1/credentials", None),
    ("POST", "/v1/credentials", {"provider": "openai", "name": "pm", "secret": SECRET}),
    ("POST", f"/v1/credentials/{uuid.uuid4()}/rotate", {"secret": SECRET}),
    ("POST", f"/v1/credentials/{uuid.uuid4()}/disable", None),
    ("GET", "/v1/status", None),
]


def _call(http: httpx.Client, session: Session | None, method: str, path: str, body: Any = None) -> httpx.Response:
    headers = session.headers if session is not None else {}
    return http.request(method, path, json=body, headers=headers)


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _readyz(stack: RunningStack) -> httpx.Response:
    return stack.client(Role.GATEWAY).get("/readyz")


def _audit_actions(db: DB) -> list[str]:
    return [row["action"] for row in db.execute("SELECT action FROM admin_audit_log ORDER BY created_at")]


def test_non_admins_get_403_and_strangers_401_on_every_admin_route(http: httpx.Client, alice: Session, db: DB) -> None:
    for method, path, body in ADMIN_ROUTES:
        assert_problem(_call(http, alice, method, path, body), 403)
        assert_problem(_call(http, None, method, path, body), 401)
    assert db.execute("SELECT count(*) AS n FROM admin_audit_log").fetchone() == {"n": 0}
    assert db.execute("SELECT count(*) AS n FROM system_settings").fetchone() == {"n": 0}
    assert db.execute("SELECT count(*) AS n FROM api_credentials").fetchone() == {"n": 0}


def test_admin_lists_users_by_cursor_and_gets_one(http: httpx.Client, admin: Session, alice: Session) -> None:
    first = _ok(_call(http, admin, "GET", "/v1/users?limit=1"))
    assert [user["handle"] for user in first["users"]] == ["admin"]
    second = _ok(_call(http, admin, "GET", f"/v1/users?limit=1&cursor={first['next_cursor']}"))
    assert [user["handle"] for user in second["users"]] == ["alice"]
    assert "next_cursor" not in second  # the reserved system user is never listed
    alice_id = second["users"][0]["id"]
    assert _ok(_call(http, admin, "GET", f"/v1/users/{alice_id}"))["handle"] == "alice"

    assert assert_problem(_call(http, admin, "GET", "/v1/users?offset=10"), 400)["detail"] == OFFSET_REFUSED
    for bad_query in ("limit=0", "limit=201", "limit=x", "cursor=%25%25", "cursor=QUJD%21"):
        assert_problem(_call(http, admin, "GET", f"/v1/users?{bad_query}"), 400)
    assert_problem(_call(http, admin, "GET", "/v1/users/not-a-uuid"), 400)
    assert_problem(_call(http, admin, "GET", f"/v1/users/{uuid.uuid4()}"), 404)


def test_task_list_refuses_offset_naming_the_cursor(http: httpx.Client, admin: Session) -> None:
    problem = assert_problem(_call(http, admin, "GET", "/v1/tasks?offset=5"), 400)
    assert "cursor" in problem["detail"]


def test_drain_disable_enable_gate_dispatch_and_readiness(
    admin_stack: RunningStack, http: httpx.Client, admin: Session, db: DB
) -> None:
    node = configured_node(admin_stack, "gpu-1", inference_running=True, available_models=[PM_MODEL])
    assert _readyz(admin_stack).status_code == 200
    [listed] = _ok(_call(http, admin, "GET", "/v1/nodes"))["nodes"]
    assert listed["node_slug"] == "gpu-1"
    assert (listed["admin_state"], listed["enabled"], listed["dispatchable"]) == ("enabled", True, True)
    assert listed["capability"]["models"] == [PM_MODEL]
    assert listed["config_ack_status"] == "applied"
    assert listed["config_ack_version"] == listed["config_version"]
    assert listed["last_heartbeat"]

    drained = _ok(_call(http, admin, "POST", "/v1/nodes/gpu-1/drain"))
    assert drained["changed"] is True
    assert (drained["node"]["admin_state"], drained["node"]["dispatchable"]) == ("draining", False)
    assert _readyz(admin_stack).text == NO_INFERENCE_PATH
    assert _ok(_call(http, admin, "POST", "/v1/nodes/gpu-1/drain"))["changed"] is False

    # The operator's word outlives the node re-registering (which rotates its token: a new config).
    assert node.register(capability_report("gpu-1", inference_running=True, available_models=[PM_MODEL])).is_success
    node.fetch_config()
    assert node.ack("applied").status_code == 204
    by_id = _ok(_call(http, admin, "GET", f"/v1/nodes/{listed['node_id']}"))
    assert by_id["admin_state"] == "draining"

    assert _ok(_call(http, admin, "POST", "/v1/nodes/gpu-1/disable"))["node"]["enabled"] is False
    enabled = _ok(_call(http, admin, "POST", "/v1/nodes/gpu-1/enable"))["node"]
    assert (enabled["admin_state"], enabled["dispatchable"]) == ("enabled", True)
    assert _readyz(admin_stack).status_code == 200
    assert _audit_actions(db) == ["node_drain", "node_disable", "node_enable"]

    # A reference with a NUL (which PostgreSQL text cannot hold) is as unknown as any other.
    for reference in ("no-such-node", "gpu%001"):
        for method, action in (("GET", ""), ("POST", "/drain"), ("POST", "/rotate_worker_token")):
            assert_problem(_call(http, admin, method, f"/v1/nodes/{reference}{action}"), 404)
    assert _ok(_call(http, admin, "GET", "/v1/nodes/gpu-1"))["admin_state"] == "enabled"


def test_settings_are_typed_validated_and_move_readiness(
    admin_stack: RunningStack, http: httpx.Client, admin: Session, db: DB
) -> None:
    configured_node(admin_stack, "gpu-1", inference_running=True, available_models=[PM_MODEL])
    listed = _ok(_call(http, admin, "GET", "/v1/settings"))["settings"]
    assert {setting["key"] for setting in listed} == set(SETTINGS)
    assert all(not setting["is_set"] for setting in listed)

    path = f"/v1/settings/{EXECUTION_MODE}"
    stored = _ok(_call(http, admin, "PUT", path, {"value": "force_external"}))
    assert (stored["value"], stored["is_set"], stored["version"], stored["updated_by"]) == (
        "force_external", True, 1, "admin"
    )  # fmt: skip
    assert _readyz(admin_stack).text == NO_EXTERNAL_PATH
    assert _ok(_call(http, admin, "GET", path))["value"] == "force_external"

    for bad in ({"value": "warp"}, {"value": 3}, {"value": ["auto"]}, {"val": "auto"}):
        assert_problem(_call(http, admin, "PUT", path, bad), 400)
    prefer = "agents.project_manager.model.selection.prefer_orchestrator_host"
    assert_problem(_call(http, admin, "PUT", f"/v1/settings/{prefer}", {"value": "yes"}), 400)
    pinned = "agents.project_manager.model.local_default_ollama_model"
    assert_problem(_call(http, admin, "PUT", f"/v1/settings/{pinned}", {"value": "two words"}), 400)
    assert_problem(_call(http, admin, "PUT", "/v1/settings/agents.unknown", {"value": 1}), 404)
    assert_problem(http.put(path, content=b"{", headers={**admin.headers, "content-type": "application/json"}), 400)
    assert _ok(_call(http, admin, "GET", path))["version"] == 1  # refused writes changed nothing

    reset = _ok(_call(http, admin, "PUT", path, {"value": None}))
    assert (reset["is_set"], reset["default"]) == (False, "auto")
    assert _readyz(admin_stack).status_code == 200
    assert _audit_actions(db) == ["setting_set", "setting_unset"]


def test_credentials_are_sealed_never_returned_and_no_inference_path(
    admin_stack: RunningStack, http: httpx.Client, admin: Session, db: DB
) -> None:
    added = _ok(
        _call(http, admin, "POST", "/v1/credentials", {"provider": "openai", "name": "pm", "secret": SECRET}), 201
    )
    assert SECRET not in str(added)
    assert "secret" not in added
    credential_id = added["credential_id"]
    row = db.execute("SELECT credential_ciphertext FROM api_credentials WHERE id = %s", (credential_id,)).fetchone()
    assert row is not None
    sealed = bytes(row["credential_ciphertext"])
    assert SECRET.encode() not in sealed
    context = admin_stack.stack.context
    assert context is not None
    assert context.secret_box.open(sealed, associated_data=credential_id) == SECRET
    # A stored key is no inference path: CyNode does not call external providers.
    assert _readyz(admin_stack).text == EXTERNAL_KEYS_UNUSED

    listed = _ok(_call(http, admin, "GET", "/v1/credentials"))["credentials"]
    assert [(c["provider"], c["name"], c["active"]) for c in listed] == [("openai", "pm", True)]
    assert SECRET not in str(listed)
    duplicate = {"provider": "openai", "name": "pm", "secret": "other"}
    assert_problem(_call(http, admin, "POST", "/v1/credentials", duplicate), 409)

    rotated = _ok(_call(http, admin, "POST", f"/v1/credentials/{credential_id}/rotate", {"secret": "sk-new"}))
    assert rotated["credential_id"] == credential_id
    row = db.execute("SELECT credential_ciphertext FROM api_credentials WHERE id = %s", (credential_id,)).fetchone()
    assert row is not None
    assert context.secret_box.open(bytes(row["credential_ciphertext"]), associated_data=credential_id) == "sk-new"
    assert _ok(_call(http, admin, "POST", f"/v1/credentials/{credential_id}/disable"))["active"] is False
    assert _readyz(admin_stack).text == NO_INFERENCE_PATH
    assert _audit_actions(db) == ["credential_added", "credential_rotated", "credential_disabled"]
    assert "sk-" not in str(db.execute("SELECT detail FROM admin_audit_log").fetchall())


@pytest.mark.parametrize(
    "body",
    [
        {"provider": "Open AI", "name": "pm", "secret": SECRET},
        {"provider": "openai", "name": "", "secret": SECRET},
        {"provider": "openai", "name": "pm", "secret": "   "},
        {"provider": "openai", "name": "pm", "secret": "x" * 9000},
        {"provider": "openai", "name": "pm", "secret": SECRET, "expires_at": "2001-01-01T00:00:00Z"},
        {"provider": "openai", "name": "pm"},
        {"provider": 1, "name": "pm", "secret": SECRET},
    ],
)
def test_bad_credentials_are_400_and_store_nothing(http: httpx.Client, admin: Session, db: DB, body: Any) -> None:
    assert_problem(_call(http, admin, "POST", "/v1/credentials", body), 400)
    assert db.execute("SELECT count(*) AS n FROM api_credentials").fetchone() == {"n": 0}


def test_credential_routes_refuse_bad_and_unknown_ids(http: httpx.Client, admin: Session) -> None:
    assert_problem(_call(http, admin, "POST", "/v1/credentials/nope/rotate", {"secret": SECRET}), 400)
    assert_problem(_call(http, admin, "POST", f"/v1/credentials/{uuid.uuid4()}/rotate", {"secret": SECRET}), 404)
    assert_problem(_call(http, admin, "POST", f"/v1/credentials/{uuid.uuid4()}/disable"), 404)


def test_status_shows_readiness_queue_and_nodes(admin_stack: RunningStack, http: httpx.Client, admin: Session) -> None:
    configured_node(admin_stack, "cpu-1")
    status = _ok(_call(http, admin, "GET", "/v1/status"))
    assert (status["ready"], status["readiness"]) == (False, NO_INFERENCE_PATH)
    assert (status["queued_jobs"], status["running_jobs"]) == (0, 0)
    assert [node["node_slug"] for node in status["nodes"]] == ["cpu-1"]
