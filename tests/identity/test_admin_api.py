"""Admin routes: every class of bad input, unknown targets, and what each action leaves behind."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.fixtures.identity import USER_PASSWORD, Session, assert_problem, create_user, login

ACTIONS = ["disable", "enable", "reset_password", "revoke_sessions"]
RESET_BODY = {"password": "a-fresh-password"}


def act(gateway: httpx.Client, admin: Session, user_id: str, action: str) -> httpx.Response:
    body = RESET_BODY if action == "reset_password" else None
    return gateway.post(f"/v1/users/{user_id}/{action}", json=body, headers=admin.headers)


def id_of(db: Any, handle: str) -> str:
    return str(db.execute("SELECT id FROM users WHERE handle = %s", (handle,)).fetchone()["id"])


@pytest.mark.parametrize("action", ACTIONS)
def test_a_user_id_that_is_not_a_uuid_is_400(gateway: httpx.Client, admin_session: Session, action: str) -> None:
    problem = assert_problem(act(gateway, admin_session, "not-a-uuid", action), 400)
    assert problem["detail"] == "Invalid user id"


@pytest.mark.parametrize("action", ACTIONS)
def test_an_unknown_user_is_404(gateway: httpx.Client, admin_session: Session, action: str) -> None:
    assert assert_problem(act(gateway, admin_session, str(uuid.uuid4()), action), 404)["detail"] == "User not found"


@pytest.mark.parametrize("action", ACTIONS)
def test_the_system_user_is_not_managed(gateway: httpx.Client, admin_session: Session, db: Any, action: str) -> None:
    problem = assert_problem(act(gateway, admin_session, id_of(db, "system"), action), 400)
    assert problem["detail"] == "The system user cannot be changed"
    row = db.execute(
        "SELECT u.is_active, c.user_id FROM users u LEFT JOIN password_credentials c ON c.user_id = u.id"
        " WHERE u.handle = 'system'"
    ).fetchone()
    assert row == {"is_active": True, "user_id": None}


def test_an_admin_cannot_disable_themselves(gateway: httpx.Client, admin_session: Session, db: Any) -> None:
    problem = assert_problem(act(gateway, admin_session, id_of(db, "admin"), "disable"), 400)
    assert problem["detail"] == "Admins cannot disable their own account"
    assert gateway.get("/v1/users/me", headers=admin_session.headers).status_code == 200


def test_disabling_twice_is_answered_but_audited_once(gateway: httpx.Client, admin_session: Session, db: Any) -> None:
    user_id = create_user(gateway, admin_session, "twice")["id"]
    for _ in range(2):
        response = act(gateway, admin_session, user_id, "disable")
        assert response.status_code == 200
        assert response.json()["is_active"] is False
    events = db.execute("SELECT count(*) AS n FROM auth_audit_log WHERE event_type = 'user_disabled'").fetchone()
    assert events["n"] == 1


def test_a_created_user_keeps_an_email_and_a_duplicate_email_is_409(
    gateway: httpx.Client, admin_session: Session
) -> None:
    first = {"handle": "mail-one", "password": USER_PASSWORD, "email": "one@example.test"}
    response = gateway.post("/v1/users", json=first, headers=admin_session.headers)
    assert response.status_code == 201, response.text
    assert response.json()["email"] == "one@example.test"
    duplicate = {**first, "handle": "mail-two"}
    conflict = assert_problem(gateway.post("/v1/users", json=duplicate, headers=admin_session.headers), 409)
    assert conflict["type"] == "https://cynode.ai/specs/conflict"


def test_a_created_admin_is_an_admin(gateway: httpx.Client, admin_session: Session) -> None:
    created = create_user(gateway, admin_session, "second-admin", is_admin=True)
    assert created["is_admin"] is True
    second = login(gateway, "second-admin", USER_PASSWORD)
    assert gateway.get("/v1/users/me", headers=second.headers).json()["is_admin"] is True


@pytest.mark.parametrize(
    ("handle", "status"),
    [("", 400), ("x" * 65, 400), ("has space", 400), ("ünïcode", 400), ("a/b", 400), ("x" * 64, 201), ("a.b_c-d", 201)],
)
def test_handle_rules(gateway: httpx.Client, admin_session: Session, handle: str, status: int) -> None:
    response = gateway.post(
        "/v1/users", json={"handle": handle, "password": USER_PASSWORD}, headers=admin_session.headers
    )
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"password": ', "application/json", 400),
        (b"{}", "application/json", 400),
        (b'{"password": "short"}', "application/json", 400),
        (b'{"password": 12345678}', "application/json", 400),
        (b"password=a-fresh-password", "application/x-www-form-urlencoded", 415),
        (b"", None, 415),
    ],
)
def test_reset_password_refuses_unreadable_bodies(
    gateway: httpx.Client, admin_session: Session, db: Any, body: bytes, content_type: str | None, status: int
) -> None:
    user_id = create_user(gateway, admin_session, "resettable")["id"]
    before = db.execute("SELECT password_hash FROM password_credentials WHERE user_id = %s", (user_id,)).fetchone()
    headers = {**admin_session.headers, **({"Content-Type": content_type} if content_type else {})}
    assert_problem(gateway.post(f"/v1/users/{user_id}/reset_password", content=body, headers=headers), status)
    after = db.execute("SELECT password_hash FROM password_credentials WHERE user_id = %s", (user_id,)).fetchone()
    assert after == before


def test_reset_password_of_another_admin_ends_their_sessions_only(
    gateway: httpx.Client, admin_session: Session
) -> None:
    other_id = create_user(gateway, admin_session, "other-admin", is_admin=True)["id"]
    other = login(gateway, "other-admin", USER_PASSWORD)
    assert act(gateway, admin_session, other_id, "reset_password").status_code == 204
    assert_problem(gateway.get("/v1/users/me", headers=other.headers), 401)
    assert gateway.get("/v1/users/me", headers=admin_session.headers).status_code == 200
    login(gateway, "other-admin", RESET_BODY["password"])
