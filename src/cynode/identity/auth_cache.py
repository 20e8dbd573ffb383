"""What this process remembers about recently authenticated callers, so most requests need no
database round trip for their identity check, while revocation still takes effect at once.

Owns two bounded maps and the rule for forgetting:

- access tokens whose signature, issuer and type verified, kept with their ``sub``, ``sid`` and
  expiry (a signature never stops being valid; the expiry is checked on every hit);
- live sessions ``(user, sid) -> user row``, trusted for at most ``SESSION_TTL_SECONDS`` and only
  while this process hears the ``cynode_identity`` channel.

Triggers (``sql/0009_identity_changes.sql``) notify ``cynode_identity`` whenever a user or a live
session changes. Every pooled connection listens on it, and PostgreSQL hands a session its own
notification as its transaction commits, so a revocation made by this process empties the map
before its ``COMMIT`` returns, whichever code path made it. Revocations made by other processes
arrive on a dedicated listening connection (:meth:`AuthCache.listen`) within milliseconds; while
that connection is down nothing is trusted. A lookup that raced a change is not stored: every
change bumps a generation, and a row read before the bump is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final
from uuid import UUID

import psycopg

from cynode.db import notices
from cynode.identity.users import UserRow

CHANNEL: Final = "cynode_identity"
SESSION_TTL_SECONDS: Final = 5.0
"""A bound on staleness should a notification ever be lost (and on a session's time-based expiry)."""
MAX_ENTRIES: Final = 10_000


@dataclass(frozen=True)
class VerifiedToken:
    user_id: UUID
    session_id: UUID
    expires_at: float
    """Unix time from the token's ``exp`` claim."""


@dataclass(frozen=True)
class _LiveSession:
    user: UserRow
    cached_at: float


def _remember(entries: dict[Any, Any], key: object, value: object) -> None:
    if len(entries) >= MAX_ENTRIES:
        # Dicts keep insertion order: the oldest entry goes first.
        del entries[next(iter(entries))]
    entries[key] = value


class AuthCache:
    def __init__(self) -> None:
        self._tokens: dict[str, VerifiedToken] = {}
        self._sessions: dict[tuple[UUID, UUID], _LiveSession] = {}
        self._generation = 0
        self._listening = False

    # Verified access tokens --------------------------------------------------------------------

    def verified_token(self, token: str) -> VerifiedToken | None:
        entry = self._tokens.get(token)
        if entry is None:
            return None
        if entry.expires_at <= time.time():
            del self._tokens[token]
            return None
        return entry

    def remember_token(self, token: str, verified: VerifiedToken) -> None:
        _remember(self._tokens, token, verified)

    # Live sessions -----------------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        """Whether other processes' changes are heard now; sessions are trusted only meanwhile."""
        return self._listening

    @property
    def generation(self) -> int:
        """Read before looking a session up in the database; hand it back to :meth:`remember_session`."""
        return self._generation

    def live_session(self, user_id: UUID, session_id: UUID) -> UserRow | None:
        if not self._listening:
            return None
        entry = self._sessions.get((user_id, session_id))
        if entry is None or time.monotonic() - entry.cached_at > SESSION_TTL_SECONDS:
            return None
        return entry.user

    def remember_session(self, user_id: UUID, session_id: UUID, user: UserRow, *, generation: int) -> None:
        if self._listening and generation == self._generation:
            _remember(self._sessions, (user_id, session_id), _LiveSession(user, time.monotonic()))

    def forget_sessions(self, *_: object) -> None:
        """Something about a user or a session changed: trust no session until it is read again."""
        self._generation += 1
        self._sessions.clear()

    # Hearing about changes ---------------------------------------------------------------------

    async def watch_connection(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Make a pooled connection forget sessions whenever it sees a change (its own on commit)."""
        await conn.execute(f"LISTEN {CHANNEL}")
        conn.add_notify_handler(self.forget_sessions)

    async def listen(self, conninfo: str) -> None:
        """Hear other processes' changes until cancelled; sessions are trusted only meanwhile."""
        await notices.listen(
            conninfo,
            [CHANNEL],
            self.forget_sessions,
            on_up=self._start_trusting,
            on_down=self._stop_trusting,
            failure_event="identity_listen_failed",
        )

    def _start_trusting(self) -> None:
        self.forget_sessions()  # whatever changed while nobody listened
        self._listening = True

    def _stop_trusting(self) -> None:
        self._listening = False
        self.forget_sessions()
