"""The control plane's shutdown notice (``POST /v1/nodes/shutdown``): a node that says it is stopping
is held from dispatch until it is heard from again; bad notices change nothing."""

from __future__ import annotations

from typing import Any

import pytest

from cynode.dispatch.holds import SHUTDOWN_HOLD
from cynode.settings import Role
from tests.fixtures.identity import assert_problem
from tests.fixtures.nodes import configured_node, now_rfc3339
from tests.fixtures.stack import RunningStack

SHUTDOWN = "/v1/nodes/shutdown"


def holds(db: Any) -> dict[str, str]:
    rows = db.execute(
        "SELECT n.node_slug, h.reason FROM node_dispatch_holds h JOIN nodes n ON n.id = h.node_id "
        "WHERE n.last_seen_at <= h.since"
    ).fetchall()
    return {row["node_slug"]: row["reason"] for row in rows}


def test_a_notice_holds_the_node_until_its_next_heartbeat(control_plane: RunningStack, db: Any) -> None:
    node = configured_node(control_plane, "leaving")
    body = {"version": 1, "node_slug": "leaving", "sent_at": now_rfc3339()}

    assert node.http.post(SHUTDOWN, json=body, headers=node.auth).status_code == 204
    assert holds(db) == {"leaving": SHUTDOWN_HOLD}

    assert node.heartbeat().status_code == 204
    assert holds(db) == {}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"version": 1, "node_slug": "someone-else", "sent_at": "2026-01-01T00:00:00Z"}, 400),
        ({"version": 2, "node_slug": "leaving", "sent_at": "2026-01-01T00:00:00Z"}, 400),
        ({"version": 1, "node_slug": "leaving"}, 400),
        ("not json", 400),
    ],
    ids=["other-slug", "bad-version", "missing-field", "not-json"],
)
def test_bad_notices_are_refused_and_hold_nothing(control_plane: RunningStack, db: Any, body: Any, status: int) -> None:
    node = configured_node(control_plane, "leaving")
    if isinstance(body, str):
        response = node.http.post(SHUTDOWN, content=body, headers={**node.auth, "Content-Type": "application/json"})
    else:
        response = node.http.post(SHUTDOWN, json=body, headers=node.auth)

    assert_problem(response, status)
    assert holds(db) == {}


def test_a_notice_without_the_node_token_is_401(control_plane: RunningStack, db: Any) -> None:
    configured_node(control_plane, "leaving")
    body = {"version": 1, "node_slug": "leaving", "sent_at": now_rfc3339()}
    client = control_plane.client(Role.ORCHESTRATOR)

    assert_problem(client.post(SHUTDOWN, json=body), 401)
    assert holds(db) == {}
