"""Acceptance: login rate limits, lockout and unreadable requests (features/identity/abuse.feature)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from psycopg import sql
from pytest_bdd import given, parsers, scenarios, then, when

from cynode.settings import Role
from tests.fixtures.identity import (
    ADMIN_HANDLE,
    ADMIN_PASSWORD,
    IDENTITY_ENV,
    IDENTITY_ROLES,
    USER_PASSWORD,
    Session,
    assert_problem,
    create_user,
    login,
)
from tests.fixtures.stack import StackFactory

scenarios("identity/abuse.feature")

WRONG_PASSWORD = "not-the-password"
OVERSIZED = "x" * 4096
JSON = "application/json"

# Each unreadable body as (content, content type), per endpoint.
LOGIN_BODIES: dict[str, tuple[bytes | None, str | None]] = {
    "malformed JSON": (b'{"handle": "admin", "password":', JSON),
    "a JSON array": (b'["admin", "admin123"]', JSON),
    "a missing password": (b'{"handle": "admin"}', JSON),
    "an empty handle": (b'{"handle": "", "password": "admin123"}', JSON),
    "a number as the handle": (b'{"handle": 42, "password": "admin123"}', JSON),
    "a form content type": (b"handle=admin&password=admin123", "application/x-www-form-urlencoded"),
    "no body": (None, None),
    "an oversized body": (b'{"handle": "admin", "password": "%s"}' % OVERSIZED.encode(), JSON),
}
REFRESH_BODIES: dict[str, tuple[bytes | None, str | None]] = {
    "malformed JSON": (b'{"refresh_token": ', JSON),
    "a missing refresh token": (b"{}", JSON),
    "an empty refresh token": (b'{"refresh_token": ""}', JSON),
    "a form content type": (b"refresh_token=abc", "application/x-www-form-urlencoded"),
    "an oversized body": (b'{"refresh_token": "%s"}' % OVERSIZED.encode(), JSON),
}
CREATE_USER_BODIES: dict[str, tuple[bytes | None, str | None]] = {
    "malformed JSON": (b'{"handle": "zed", ', JSON),
    "a missing password": (b'{"handle": "zed"}', JSON),
    "a too short password": (b'{"handle": "zed", "password": "short"}', JSON),
    "an invalid email": (b'{"handle": "zed", "password": "long-enough-pw", "email": "not-an-email"}', JSON),
    "a string as is_admin": (b'{"handle": "zed", "password": "long-enough-pw", "is_admin": "yes"}', JSON),
    "a form content type": (b"handle=zed&password=long-enough-pw", "application/x-www-form-urlencoded"),
    "an oversized body": (b'{"handle": "zed", "password": "%s"}' % OVERSIZED.encode(), JSON),
}


def try_login(gateway: httpx.Client, handle: str, password: str, forwarded_for: str | None = None) -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return gateway.post("/v1/auth/login", json={"handle": handle, "password": password}, headers=headers)


def send(gateway: httpx.Client, path: str, body: tuple[bytes | None, str | None], **headers: str) -> httpx.Response:
    content, content_type = body
    if content_type is not None:
        headers["Content-Type"] = content_type
    return gateway.post(path, content=content, headers=headers)


def assert_too_many_attempts(response: httpx.Response) -> None:
    assert assert_problem(response, 429)["detail"] == "Too many login attempts; try again later"
    assert int(response.headers["Retry-After"]) >= 1


def account_tables(db: Any) -> dict[str, list[dict[str, Any]]]:
    return {
        table: db.execute(sql.SQL("SELECT * FROM {} ORDER BY id").format(sql.Identifier(table))).fetchall()
        for table in ("users", "password_credentials", "refresh_sessions")
    }


@pytest.fixture
def tables_before() -> list[dict[str, list[dict[str, Any]]]]:
    """The account tables as they were just before the request under test."""
    return []


# Gateways


def start_gateway(stack_factory: StackFactory, **identity: Any) -> httpx.Client:
    overrides = {f"identity.{name}": value for name, value in identity.items()}
    return stack_factory(IDENTITY_ROLES, env=IDENTITY_ENV, overrides=overrides).client(Role.GATEWAY)


@given(
    parsers.parse("a gateway that locks out for {seconds:d} seconds after {failures:d} failed logins"),
    target_fixture="gateway",
)
def gateway_with_lockout(stack_factory: StackFactory, seconds: int, failures: int) -> httpx.Client:
    return start_gateway(stack_factory, lockout_seconds=seconds, login_failures_before_lockout=failures)


@given(
    parsers.parse(
        "a gateway behind a trusted proxy that locks out for {seconds:d} seconds after {failures:d} failed logins"
    ),
    target_fixture="gateway",
)
def gateway_behind_proxy(stack_factory: StackFactory, seconds: int, failures: int) -> httpx.Client:
    return start_gateway(
        stack_factory,
        lockout_seconds=seconds,
        login_failures_before_lockout=failures,
        trusted_proxies=["127.0.0.0/8"],
        # A slowed-down handle stays slowed down for the rest of the scenario, however slow the machine.
        login_delay_initial_seconds=seconds,
    )


@given(parsers.parse("a gateway that allows {attempts:d} login attempts per minute per IP"), target_fixture="gateway")
def gateway_with_rate_limit(stack_factory: StackFactory, attempts: int) -> httpx.Client:
    return start_gateway(stack_factory, login_attempts_per_minute_per_ip=attempts)


@given(parsers.parse("a gateway that accepts request bodies of at most {size:d} bytes"), target_fixture="gateway")
def gateway_with_body_limit(stack_factory: StackFactory, size: int) -> httpx.Client:
    stack = stack_factory(IDENTITY_ROLES, env=IDENTITY_ENV, overrides={"gateway.max_request_bytes": size})
    return stack.client(Role.GATEWAY)


@given(parsers.parse('the user "{handle}" exists'))
def user_exists(gateway: httpx.Client, handle: str) -> None:
    create_user(gateway, login(gateway, ADMIN_HANDLE, ADMIN_PASSWORD), handle)


# Lockout and rate limits


@when(
    parsers.parse('"{handle}" is tried with a wrong password {count:d} times from one IP'),
    target_fixture="attempts",
)
def wrong_passwords(gateway: httpx.Client, handle: str, count: int) -> list[httpx.Response]:
    return [try_login(gateway, handle, WRONG_PASSWORD) for _ in range(count)]


@then(parsers.parse("the first {count:d} attempts are refused with 401"))
def first_attempts_unauthorized(attempts: list[httpx.Response], count: int) -> None:
    for response in attempts[:count]:
        assert assert_problem(response, 401)["detail"] == "Invalid credentials"


@then(parsers.parse("the other {count:d} attempts are refused with 429 and a Retry-After header"))
def other_attempts_throttled(attempts: list[httpx.Response], count: int) -> None:
    for response in attempts[-count:]:
        assert_too_many_attempts(response)


@then(
    parsers.parse('logging in as "{handle}" with the right password is refused with 429'),
    target_fixture="throttled_response",
)
def right_password_throttled(gateway: httpx.Client, handle: str) -> httpx.Response:
    response = try_login(gateway, handle, ADMIN_PASSWORD)
    assert_too_many_attempts(response)
    return response


@then(parsers.parse("the audit log holds a login_failure for each of the {count:d} attempts, {judged:d} judged"))
def every_attempt_audited(db: Any, count: int, judged: int) -> None:
    rows = db.execute(
        """
        SELECT reason, count(*) AS n FROM auth_audit_log
        WHERE event_type = 'login_failure' AND subject_handle = 'admin' AND NOT success
          AND ip_address = '127.0.0.1' AND user_agent LIKE 'python-httpx/%%'
        GROUP BY reason
        """
    ).fetchall()
    by_reason = {row["reason"]: row["n"] for row in rows}
    # The lockout of the IP and the slow-down of the handle both hold; the audit names the longer wait.
    assert by_reason.pop("invalid password") == judged
    assert set(by_reason) <= {"locked out", "slowed down"}
    assert sum(by_reason.values()) == count - judged


@when("the lockout has ended")
def lockout_ends(throttled_response: httpx.Response) -> None:
    time.sleep(int(throttled_response.headers["Retry-After"]) + 0.5)


@then(parsers.parse('I can log in as "{handle}" again'))
def can_log_in_again(gateway: httpx.Client, handle: str) -> None:
    login(gateway, handle, ADMIN_PASSWORD)


@when(parsers.parse("{count:d} unknown handles are tried from one IP"))
def unknown_handles(gateway: httpx.Client, count: int) -> None:
    for number in range(count):
        assert_problem(try_login(gateway, f"nobody-{number}", WRONG_PASSWORD), 401)


@when(parsers.parse('"{handle}" is tried with a wrong password from {count:d} different IPs'))
def wrong_passwords_from_many_ips(gateway: httpx.Client, handle: str, count: int) -> None:
    for number in range(count):
        assert_problem(try_login(gateway, handle, WRONG_PASSWORD, forwarded_for=f"203.0.113.{number + 1}"), 401)


@then(parsers.parse('logging in as "{handle}" with the right password from a new IP is refused with 429'))
def right_password_new_ip_throttled(gateway: httpx.Client, db: Any, handle: str) -> None:
    assert_too_many_attempts(try_login(gateway, handle, ADMIN_PASSWORD, forwarded_for="198.51.100.7"))
    audited = db.execute(
        "SELECT reason FROM auth_audit_log WHERE ip_address = '198.51.100.7' AND event_type = 'login_failure'"
    ).fetchall()
    assert audited == [{"reason": "slowed down"}]


@then(parsers.parse('"{handle}" can log in from that IP'))
def other_user_logs_in_from_ip(gateway: httpx.Client, handle: str) -> None:
    assert try_login(gateway, handle, USER_PASSWORD, forwarded_for="198.51.100.7").status_code == 200


@when(parsers.parse('I log in as "{handle}" {count:d} times'))
def log_in_repeatedly(gateway: httpx.Client, handle: str, count: int) -> None:
    for _ in range(count):
        login(gateway, handle, ADMIN_PASSWORD)


# Unreadable requests


@when(parsers.parse("I send a login request with {body}"), target_fixture="response")
def send_login(gateway: httpx.Client, db: Any, tables_before: list[Any], body: str) -> httpx.Response:
    tables_before.append(account_tables(db))
    return send(gateway, "/v1/auth/login", LOGIN_BODIES[body])


@when(parsers.parse("I send a refresh request with {body}"), target_fixture="response")
def send_refresh(gateway: httpx.Client, db: Any, tables_before: list[Any], body: str) -> httpx.Response:
    tables_before.append(account_tables(db))
    return send(gateway, "/v1/auth/refresh", REFRESH_BODIES[body])


@when(parsers.parse("I send a create-user request with {body}"), target_fixture="response")
def send_create_user(
    gateway: httpx.Client, db: Any, tables_before: list[Any], session: Session, body: str
) -> httpx.Response:
    tables_before.append(account_tables(db))
    return send(gateway, "/v1/users", CREATE_USER_BODIES[body], **session.headers)


@then(parsers.parse("the response is a {status:d} problem"))
def problem_response(response: httpx.Response, status: int) -> None:
    problem = assert_problem(response, status)
    assert "Traceback" not in response.text
    assert OVERSIZED not in response.text
    assert problem["detail"]


@then("no session, user or credential was written")
def nothing_written(db: Any, tables_before: list[Any]) -> None:
    assert [account_tables(db)] == tables_before


@then("my session still has its one refresh token")
def session_untouched(db: Any, tables_before: list[Any], session: Session) -> None:
    assert [account_tables(db)] == tables_before
    assert db.execute("SELECT count(*) AS n FROM refresh_sessions WHERE is_active").fetchone()["n"] == 1


@then(parsers.parse("the audit log holds {count:d} {event} rows for an invalid request"))
def invalid_requests_audited(db: Any, count: int, event: str) -> None:
    rows = db.execute(
        """
        SELECT event_type, reason, success FROM auth_audit_log
        WHERE event_type IN ('login_failure', 'refresh_failure')
        """
    ).fetchall()
    assert rows == [{"event_type": event, "reason": "invalid request", "success": False}] * count
