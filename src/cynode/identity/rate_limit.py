"""Login throttling that an attacker cannot turn against the account owner.

Owns ``login_attempts``: one row per judged attempt (a success or a credential failure) and one per
lockout an admin cleared; attempts the throttle refused are never rows, so a flood of them costs a
check and nothing more, and a lockout ends on schedule however hard a client keeps knocking.
Every check reads a bounded number of index entries (sql/0007_abuse_resistance.sql), so it stays
O(log n) however large the table grows. The rules, each a sliding window:

- per source (an IPv4 address, an IPv6 /64): at most N attempts a minute, and a lockout after N
  credential failures across all handles;
- per handle from one source: at most N attempts a minute, and a lockout after N credential
  failures;
- per handle from anywhere: no hard lock, but a growing delay. From the N-th failure on, the next
  attempt must wait ``login_delay_initial_seconds``, doubled for each further failure, at most
  ``lockout_seconds``. Sources that recently logged in to that handle are exempt, so its owner
  can always get in from a known address however many addresses an attacker uses.

An admin (or ``cynode user unlock`` on the host) clears a handle: failures before that moment no
longer count against it. Handles are kept only as a keyed digest: what someone typed into the
handle field may be a password.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Final
from uuid import UUID

from psycopg import AsyncConnection
from psycopg.rows import DictRow

from cynode.identity import audit
from cynode.identity.audit import AuthEvent, ClientInfo, FailureReason
from cynode.identity.settings import IdentitySettings
from cynode.identity.users import UserRow

_RATE_WINDOW_SECONDS: Final = 60


class Outcome(StrEnum):
    SUCCESS = "success"
    CREDENTIAL_FAILURE = "credential_failure"
    LOCKOUT_CLEARED = "lockout_cleared"


@dataclass(frozen=True)
class Throttled:
    reason: FailureReason
    retry_after_seconds: int


@dataclass(frozen=True)
class AttemptKey:
    """What one login attempt is throttled as."""

    handle: str
    handle_digest: bytes
    source: str | None
    """The client's source network (see ``cynode.http.client_address.source_network``)."""


# Each branch yields the wait of one rule when the rule is at its limit. The limit-th most recent
# counted row inside the window, if there is one, holds the subject at its limit until it leaves the
# window. Rows older than the handle's last clearing do not count against the handle.
_LONGEST_WAIT: Final = """
WITH cleared AS (
    SELECT coalesce(
        (SELECT max(created_at) FROM login_attempts
         WHERE outcome = 'lockout_cleared' AND user_id = (SELECT id FROM users WHERE handle = %(handle)s)),
        '-infinity') AS at
), waits AS (
    (SELECT %(rate_limited)s AS reason, created_at + make_interval(secs => %(rate_window)s) - now() AS wait
     FROM login_attempts
     WHERE source = %(source)s::cidr AND created_at > now() - make_interval(secs => %(rate_window)s)
     ORDER BY created_at DESC OFFSET %(source_rate)s - 1 LIMIT 1)
    UNION ALL
    (SELECT %(locked_out)s, created_at + make_interval(secs => %(window)s) - now()
     FROM login_attempts
     WHERE source = %(source)s::cidr AND outcome = 'credential_failure'
       AND created_at > now() - make_interval(secs => %(window)s)
     ORDER BY created_at DESC OFFSET %(failures)s - 1 LIMIT 1)
    UNION ALL
    (SELECT %(rate_limited)s, created_at + make_interval(secs => %(rate_window)s) - now()
     FROM login_attempts
     WHERE handle_digest = %(digest)s AND source = %(source)s::cidr AND outcome IN ('success', 'credential_failure')
       AND created_at > now() - make_interval(secs => %(rate_window)s)
     ORDER BY created_at DESC OFFSET %(handle_rate)s - 1 LIMIT 1)
    UNION ALL
    (SELECT %(locked_out)s, created_at + make_interval(secs => %(window)s) - now()
     FROM login_attempts, cleared
     WHERE handle_digest = %(digest)s AND source = %(source)s::cidr AND outcome = 'credential_failure'
       AND created_at > now() - make_interval(secs => %(window)s) AND created_at > cleared.at
     ORDER BY created_at DESC OFFSET %(failures)s - 1 LIMIT 1)
    UNION ALL
    (SELECT %(delayed)s,
            latest + least(make_interval(secs => %(window)s),
                           make_interval(secs => %(initial_delay)s * 2 ^ (failures - %(failures)s))) - now()
     FROM (SELECT count(*) AS failures, max(created_at) AS latest
           FROM (SELECT created_at FROM login_attempts, cleared
                 WHERE handle_digest = %(digest)s AND outcome = 'credential_failure'
                   AND created_at > now() - make_interval(secs => %(window)s) AND created_at > cleared.at
                 ORDER BY created_at DESC LIMIT %(counted_failures)s) AS recent) AS handle_failures
     WHERE failures >= %(failures)s
       AND NOT EXISTS (
           SELECT 1 FROM login_attempts
           WHERE handle_digest = %(digest)s AND source = %(source)s::cidr AND outcome = 'success'
             AND created_at > now() - make_interval(days => %(known_days)s)))
)
SELECT reason, ceil(extract(epoch FROM wait))::int AS wait FROM waits
WHERE wait > interval '0' ORDER BY wait DESC LIMIT 1
"""


class LoginThrottle:
    def __init__(self, settings: IdentitySettings, handle_key: bytes) -> None:
        self._handle_key = handle_key
        self._failures = settings.login_failures_before_lockout
        doublings = math.ceil(math.log2(max(1, settings.lockout_seconds / settings.login_delay_initial_seconds)))
        self._parameters = {
            "rate_limited": FailureReason.RATE_LIMITED.value,
            "locked_out": FailureReason.LOCKED_OUT.value,
            "delayed": FailureReason.DELAYED.value,
            "rate_window": _RATE_WINDOW_SECONDS,
            "window": settings.lockout_seconds,
            "source_rate": settings.login_attempts_per_minute_per_ip,
            "handle_rate": settings.login_attempts_per_minute_per_handle,
            "failures": settings.login_failures_before_lockout,
            "initial_delay": settings.login_delay_initial_seconds,
            # Past this many failures the delay is at its cap: counting further rows changes nothing.
            "counted_failures": settings.login_failures_before_lockout + doublings + 1,
            "known_days": settings.known_source_days,
        }

    def key(self, handle: str, source: str | None) -> AttemptKey:
        digest = hmac.new(self._handle_key, handle.encode("utf-8"), hashlib.sha256).digest()
        return AttemptKey(handle=handle, handle_digest=digest, source=source)

    async def check(self, conn: AsyncConnection[DictRow], attempt: AttemptKey) -> Throttled | None:
        """Whether the attempt must wait, and how long (the longest wait of any rule wins)."""
        parameters = {**self._parameters, "handle": attempt.handle, "digest": attempt.handle_digest}
        cursor = await conn.execute(_LONGEST_WAIT, {**parameters, "source": attempt.source})
        row = await cursor.fetchone()
        if row is None:
            return None
        return Throttled(FailureReason(row["reason"]), max(1, row["wait"]))


async def record_attempt(
    conn: AsyncConnection[DictRow], attempt: AttemptKey, outcome: Outcome, user_id: UUID | None
) -> None:
    await conn.execute(
        "INSERT INTO login_attempts (outcome, handle_digest, user_id, source) VALUES (%s, %s, %s, %s::cidr)",
        (outcome, attempt.handle_digest, user_id, attempt.source),
    )


async def clear_lockout(conn: AsyncConnection[DictRow], user: UserRow, client: ClientInfo, by: str) -> None:
    """From now on, earlier failures no longer count against ``user``'s handle; audited."""
    await conn.execute(
        "INSERT INTO login_attempts (outcome, user_id) VALUES (%s, %s)", (Outcome.LOCKOUT_CLEARED, user.id)
    )
    await audit.record(
        conn, AuthEvent.LOCKOUT_CLEARED, client, success=True, user_id=user.id, handle=user.handle, reason=f"by {by}"
    )


async def purge_attempts(conn: AsyncConnection[DictRow], older_than_seconds: int) -> int:
    cursor = await conn.execute(
        "DELETE FROM login_attempts WHERE created_at < now() - make_interval(secs => %s)", (older_than_seconds,)
    )
    return cursor.rowcount
