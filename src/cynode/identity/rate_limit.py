"""Login throttling per client IP and per handle: an attempt rate limit and a lockout after failures.

The audit log is the record of attempts, so every gateway process sharing the database sees the
same counts and a restart forgets nothing. Both rules are sliding windows over login events:

- rate limit: at most N attempts per minute (per IP, per handle), whatever their outcome;
- lockout: at most N credential failures (unknown handle, wrong password, ...) within
  ``lockout_seconds``; after that every attempt is refused, even with the right password, until
  the oldest of those failures leaves the window.

Attempts the throttle refuses are audited but not counted, so a lockout ends on schedule however
hard a client keeps knocking. Concurrent attempts can each pass the check before any is recorded,
so a burst may overshoot a limit by the number of requests in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from psycopg import AsyncConnection, sql
from psycopg.rows import DictRow

from cynode.identity.audit import CREDENTIAL_FAILURES, THROTTLE_REJECTIONS, FailureReason
from cynode.identity.settings import IdentitySettings

_RATE_WINDOW: Final = 60


@dataclass(frozen=True)
class Throttled:
    reason: FailureReason
    retry_after_seconds: int


@dataclass(frozen=True)
class _Rule:
    reason: FailureReason
    limit: int
    window_seconds: int
    counted: sql.Composable
    """Which login events of the subject count toward the limit."""


# The limit-th most recent counted event inside the window, if there is one, says the subject is at
# its limit until that event leaves the window. The event_type test matches the partial indexes of
# sql/0002_identity.sql.
_WAIT_AT_LIMIT: Final = sql.SQL("""
    (SELECT {reason} AS reason,
            ceil(extract(epoch FROM created_at + make_interval(secs => {window}) - now()))::int AS wait
     FROM auth_audit_log
     WHERE {subject}
       AND event_type IN ('login_success', 'login_failure')
       AND created_at > now() - make_interval(secs => {window})
       AND ({counted})
     ORDER BY created_at DESC
     OFFSET {limit} - 1 LIMIT 1)
""")

_ATTEMPT: Final = sql.SQL("reason IS NULL OR NOT reason = ANY({})").format(
    sql.Literal(sorted(r.value for r in THROTTLE_REJECTIONS))
)
_CREDENTIAL_FAILURE: Final = sql.SQL("reason = ANY({})").format(
    sql.Literal(sorted(r.value for r in CREDENTIAL_FAILURES))
)
_BY_HANDLE: Final = sql.SQL("subject_handle = %(handle)s")
_BY_IP: Final = sql.SQL("ip_address = %(ip)s::inet")


def _longest_wait(checks: list[tuple[sql.Composable, _Rule]]) -> sql.Composed:
    """One query over every (subject, rule) check: the reason and seconds of the longest wait, if any."""
    waits = sql.SQL(" UNION ALL ").join(
        _WAIT_AT_LIMIT.format(
            reason=sql.Literal(rule.reason.value),
            window=sql.Literal(rule.window_seconds),
            subject=subject,
            counted=rule.counted,
            limit=sql.Literal(rule.limit),
        )
        for subject, rule in checks
    )
    return sql.SQL("SELECT reason, wait FROM ({}) AS waits ORDER BY wait DESC LIMIT 1").format(waits)


class LoginThrottle:
    def __init__(self, settings: IdentitySettings) -> None:
        lockout = _Rule(
            FailureReason.LOCKED_OUT,
            settings.login_failures_before_lockout,
            settings.lockout_seconds,
            _CREDENTIAL_FAILURE,
        )
        ip_rate = _Rule(FailureReason.RATE_LIMITED, settings.login_attempts_per_minute_per_ip, _RATE_WINDOW, _ATTEMPT)
        handle_rate = _Rule(
            FailureReason.RATE_LIMITED, settings.login_attempts_per_minute_per_handle, _RATE_WINDOW, _ATTEMPT
        )
        handle_checks: list[tuple[sql.Composable, _Rule]] = [(_BY_HANDLE, handle_rate), (_BY_HANDLE, lockout)]
        self._by_handle = _longest_wait(handle_checks)
        self._by_handle_and_ip = _longest_wait([*handle_checks, (_BY_IP, ip_rate), (_BY_IP, lockout)])

    async def check(self, conn: AsyncConnection[DictRow], ip: str | None, handle: str) -> Throttled | None:
        """Whether a login attempt from ``ip`` for ``handle`` must wait, and how long (the longest wait wins)."""
        query = self._by_handle if ip is None else self._by_handle_and_ip
        cursor = await conn.execute(query, {"handle": handle, "ip": ip})
        row = await cursor.fetchone()
        if row is None:
            return None
        return Throttled(FailureReason(row["reason"]), max(1, row["wait"]))
