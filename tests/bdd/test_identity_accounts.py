"""Acceptance: session lifetime and admin user management (features/identity/{sessions,admin}.feature)."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from pytest_bdd import given, parsers, scenarios, then, when

from cynode.settings import Role
from tests.fixtures.identity import (
    ADMIN_HANDLE,
    ADMIN_PASSWORD,
    USER_PASSWORD,
    Session,
    assert_problem,
    create_user,
    login,
)
from tests.fixtures.stack import RunningStack

scenarios("identity/sessions.feature", "identity/admin.feature")


def assert_session_refused(gateway: httpx.Client, session: Session) -> None:
    """Neither token of ``session`` works any more."""
    assert_problem(gateway.get("/v1/users/me", headers=session.headers), 401)
    assert_problem(gateway.post("/v1/auth/refresh", json={"refresh_token": session.refresh_token}), 401)


def user_id(db: Any, handle: str) -> str:
    return str(db.execute("SELECT id FROM users WHERE handle = %s", (handle,)).fetchone()["id"])


def user_count(db: Any) -> int:
    count: int = db.execute("SELECT count(*) AS n FROM users").fetchone()["n"]
    return count


# Audit


@then(parsers.parse('the audit log records a failed "{event}" with reason "{reason}"'))
def audit_failure_recorded(db: Any, event: str, reason: str) -> None:
    rows = db.execute(
        "SELECT 1 FROM auth_audit_log WHERE event_type = %s AND reason = %s AND NOT success AND user_id IS NOT NULL",
        (event, reason),
    ).fetchall()
    assert len(rows) == 1


@then(parsers.parse('the audit log records a successful "{event}"'))
def audit_success_recorded(db: Any, event: str) -> None:
    rows = db.execute("SELECT ip_address FROM auth_audit_log WHERE event_type = %s AND success", (event,)).fetchall()
    assert len(rows) == 1
    assert str(rows[0]["ip_address"]) == "127.0.0.1"


@then(parsers.parse('the audit log records a successful "{event}" for "{handle}"'))
def audit_success_recorded_for(db: Any, event: str, handle: str) -> None:
    rows = db.execute(
        "SELECT reason FROM auth_audit_log WHERE event_type = %s AND success AND user_id = %s AND subject_handle = %s",
        (event, user_id(db, handle), handle),
    ).fetchall()
    assert rows == [{"reason": "by admin"}]


# Sessions


@when("the old refresh token is presented again", target_fixture="replay_response")
def replay_old_refresh_token(gateway: httpx.Client, session: Session) -> httpx.Response:
    return gateway.post("/v1/auth/refresh", json={"refresh_token": session.refresh_token})


@then("that refresh is refused with 401")
def replay_refused(replay_response: httpx.Response) -> None:
    assert assert_problem(replay_response, 401)["detail"] == "Invalid refresh token"


@then("the tokens the first refresh issued are refused too")
def refreshed_tokens_refused(gateway: httpx.Client, token_response: httpx.Response) -> None:
    body = token_response.json()
    assert_session_refused(gateway, Session(body["access_token"], body["refresh_token"]))


@when("two clients refresh with the same refresh token at once", target_fixture="race_statuses")
def race_two_refreshes(gateway_stack: RunningStack, session: Session) -> list[int]:
    start = threading.Barrier(2)
    statuses: list[int] = []

    def refresh() -> None:
        client = gateway_stack.client(Role.GATEWAY)  # its own connection, so the requests overlap
        start.wait()
        statuses.append(client.post("/v1/auth/refresh", json={"refresh_token": session.refresh_token}).status_code)

    threads = [threading.Thread(target=refresh) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return statuses


@then("exactly one refresh succeeds and the other is refused with 401")
def exactly_one_refresh_wins(race_statuses: list[int]) -> None:
    assert sorted(race_statuses) == [200, 401]


@given(parsers.parse('I am logged in as "{handle}" on two devices'), target_fixture="devices")
def logged_in_twice(gateway: httpx.Client, handle: str) -> list[Session]:
    return [login(gateway, handle, ADMIN_PASSWORD) for _ in range(2)]


@when("I logout on the first device")
def logout_first_device(gateway: httpx.Client, devices: list[Session]) -> None:
    response = gateway.post("/v1/auth/logout", headers=devices[0].headers)
    assert response.status_code == 204, response.text


@when("I logout on the first device handing in the refresh token of the second")
def logout_first_device_with_second_token(gateway: httpx.Client, devices: list[Session]) -> None:
    response = gateway.post(
        "/v1/auth/logout", json={"refresh_token": devices[1].refresh_token}, headers=devices[0].headers
    )
    assert response.status_code == 204, response.text


@then("the tokens of the first device are refused")
def first_device_refused(gateway: httpx.Client, devices: list[Session]) -> None:
    assert_session_refused(gateway, devices[0])


@then("the tokens of the second device are refused")
def second_device_refused(gateway: httpx.Client, devices: list[Session]) -> None:
    assert_session_refused(gateway, devices[1])


@then("the second device can still call the API and refresh")
def second_device_works(gateway: httpx.Client, devices: list[Session]) -> None:
    assert gateway.get("/v1/users/me", headers=devices[1].headers).status_code == 200
    response = gateway.post("/v1/auth/refresh", json={"refresh_token": devices[1].refresh_token})
    assert response.status_code == 200, response.text


# Admin


@given(parsers.parse('the user "{handle}" exists and is logged in'), target_fixture="user_session")
def user_logged_in(gateway: httpx.Client, session: Session, handle: str) -> Session:
    create_user(gateway, session, handle)
    return login(gateway, handle, USER_PASSWORD)


@given(parsers.parse('the admin user "{handle}" exists and is logged in'), target_fixture="user_session")
def admin_user_logged_in(gateway: httpx.Client, session: Session, handle: str) -> Session:
    create_user(gateway, session, handle, is_admin=True)
    return login(gateway, handle, USER_PASSWORD)


@pytest.fixture
def users_before() -> list[int]:
    """The user count seen just before a create request."""
    return []


@when(parsers.parse('I create the user "{handle}"'), target_fixture="admin_response")
def create_named_user(
    gateway: httpx.Client, session: Session, db: Any, users_before: list[int], handle: str
) -> httpx.Response:
    users_before.append(user_count(db))
    return gateway.post("/v1/users", json={"handle": handle, "password": USER_PASSWORD}, headers=session.headers)


@when(parsers.parse('"{actor}" creates the user "{handle}"'), target_fixture="admin_response")
def actor_creates_user(gateway: httpx.Client, user_session: Session, handle: str) -> httpx.Response:
    return gateway.post("/v1/users", json={"handle": handle, "password": USER_PASSWORD}, headers=user_session.headers)


@then(parsers.parse('the response is 201 with the user "{handle}"'))
def created_user_response(db: Any, admin_response: httpx.Response, handle: str) -> None:
    assert admin_response.status_code == 201, admin_response.text
    assert admin_response.json() == {"id": user_id(db, handle), "handle": handle, "is_active": True, "is_admin": False}


@then(parsers.parse("the response is a {status:d} problem"))
def problem_response(admin_response: httpx.Response, status: int) -> None:
    assert_problem(admin_response, status)


@then("no user was created")
def no_user_created(db: Any, users_before: list[int]) -> None:
    assert [user_count(db)] == users_before


@then(parsers.parse('"{handle}" can log in'))
def can_log_in(gateway: httpx.Client, handle: str) -> None:
    login(gateway, handle, USER_PASSWORD)


@then(parsers.parse('"{handle}" can log in with password "{password}"'))
def can_log_in_with(gateway: httpx.Client, handle: str, password: str) -> None:
    login(gateway, handle, password)


@then(parsers.parse('"{handle}" cannot log in'))
def cannot_log_in(gateway: httpx.Client, handle: str) -> None:
    response = gateway.post("/v1/auth/login", json={"handle": handle, "password": USER_PASSWORD})
    assert assert_problem(response, 401)["detail"] == "Invalid credentials"


@then(parsers.parse('"{handle}" is not an admin'))
def not_an_admin(gateway: httpx.Client, handle: str) -> None:
    user = login(gateway, handle, USER_PASSWORD)
    assert gateway.get("/v1/users/me", headers=user.headers).json()["is_admin"] is False


def admin_action(
    gateway: httpx.Client, admin: Session, db: Any, handle: str, action: str, **body: Any
) -> httpx.Response:
    return gateway.post(f"/v1/users/{user_id(db, handle)}/{action}", json=body or None, headers=admin.headers)


@when(parsers.parse('I disable "{handle}"'))
def disable_user(gateway: httpx.Client, session: Session, db: Any, handle: str) -> None:
    response = admin_action(gateway, session, db, handle, "disable")
    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is False


@when(parsers.parse('I enable "{handle}"'))
def enable_user(gateway: httpx.Client, session: Session, db: Any, handle: str) -> None:
    response = admin_action(gateway, session, db, handle, "enable")
    assert response.status_code == 200, response.text
    assert response.json()["is_active"] is True


@when(parsers.parse('I reset the password of "{handle}" to "{password}"'))
def reset_password(gateway: httpx.Client, session: Session, db: Any, handle: str, password: str) -> None:
    response = admin_action(gateway, session, db, handle, "reset_password", password=password)
    assert response.status_code == 204, response.text


@when(parsers.parse('I revoke the sessions of "{handle}"'))
def revoke_sessions(gateway: httpx.Client, session: Session, db: Any, handle: str) -> None:
    response = admin_action(gateway, session, db, handle, "revoke_sessions")
    assert response.status_code == 204, response.text


@then(parsers.parse('the session of "{handle}" is refused'))
def user_session_refused(gateway: httpx.Client, user_session: Session) -> None:
    assert_session_refused(gateway, user_session)


@when(parsers.parse('"{actor}" calls the admin route {route}'), target_fixture="admin_response")
def call_admin_route(gateway: httpx.Client, db: Any, user_session: Session, route: str) -> httpx.Response:
    method, _, path = route.partition(" ")
    path = path.replace("{admin}", user_id(db, ADMIN_HANDLE))
    bodies = {
        "/v1/users": {"handle": "zed", "password": USER_PASSWORD},
        "reset_password": {"password": "taken-over-password"},
    }
    body = next((value for suffix, value in bodies.items() if path.endswith(suffix)), None)
    return gateway.request(method, path, json=body, headers=user_session.headers)


@then("nothing about the admin account changed")
def admin_unchanged(gateway: httpx.Client, db: Any, session: Session) -> None:
    assert gateway.get("/v1/users/me", headers=session.headers).json()["is_active"] is True
    login(gateway, ADMIN_HANDLE, ADMIN_PASSWORD)
    assert db.execute("SELECT 1 FROM users WHERE handle = 'zed'").fetchone() is None


@then(parsers.parse('the user "{handle}" exists as the reserved system user'))
def reserved_system_user(db: Any, handle: str) -> None:
    row = db.execute(
        """
        SELECT u.is_system, u.is_admin, c.user_id AS credential
        FROM users u LEFT JOIN password_credentials c ON c.user_id = u.id WHERE u.handle = %s
        """,
        (handle,),
    ).fetchone()
    assert row == {"is_system": True, "is_admin": False, "credential": None}
