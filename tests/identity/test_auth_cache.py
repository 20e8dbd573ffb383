"""The authentication cache forgets sessions the moment identity changes, in this process or another.

Against a real PostgreSQL: the triggers of ``0009_identity_changes.sql`` notify, pooled connections
hear their own commits, the dedicated listener hears other processes; a lookup that raced a change
is never stored, and nothing is trusted while the listener is down.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest

from cynode.db.migrations import apply_migrations
from cynode.db.pool import Pool, open_pool
from cynode.identity.auth_cache import CHANNEL, AuthCache, VerifiedToken
from cynode.identity.users import UserRow
from tests.fixtures.identity import USER_PASSWORD, Session, create_user, login

CHANGE_WAIT_SECONDS = 10


def _user() -> UserRow:
    return UserRow(id=uuid.uuid4(), handle="someone", email=None, is_active=True, is_admin=False, is_system=False)


async def _insert_session(pool: Pool) -> tuple[uuid.UUID, uuid.UUID]:
    user_id, family_id = uuid.uuid4(), uuid.uuid4()
    async with pool.connection() as conn:
        await conn.execute("INSERT INTO users (id, handle) VALUES (%s, %s)", (user_id, f"u-{user_id.hex[:8]}"))
        await conn.execute(
            "INSERT INTO refresh_sessions (user_id, family_id, refresh_token_hash, expires_at)"
            " VALUES (%s, %s, %s, now() + interval '1 day')",
            (user_id, family_id, uuid.uuid4().bytes),
        )
    return user_id, family_id


@pytest.fixture
async def listening(fresh_dsn: str) -> AsyncIterator[tuple[AuthCache, Pool]]:
    """A cache whose listener runs and whose pool's connections watch it."""
    await apply_migrations(fresh_dsn)
    cache = AuthCache()
    pool = await open_pool(fresh_dsn, configure=cache.watch_connection)
    listener = asyncio.create_task(cache.listen(fresh_dsn))
    async with asyncio.timeout(CHANGE_WAIT_SECONDS):
        while not cache.listening:  # noqa: ASYNC110 - a flag the listener task sets
            await asyncio.sleep(0.01)
    yield cache, pool
    listener.cancel()
    await asyncio.gather(listener, return_exceptions=True)
    await pool.close()


async def _wait_for_change(cache: AuthCache, generation: int) -> None:
    async with asyncio.timeout(CHANGE_WAIT_SECONDS):
        while cache.generation == generation:  # noqa: ASYNC110 - bumped by a notify handler
            await asyncio.sleep(0.005)


async def test_a_commit_in_this_process_forgets_sessions_before_it_returns(
    listening: tuple[AuthCache, Pool],
) -> None:
    cache, pool = listening
    user_id, family_id = await _insert_session(pool)
    cache.remember_session(user_id, family_id, _user(), generation=cache.generation)
    assert cache.live_session(user_id, family_id) is not None
    async with pool.connection() as conn, conn.transaction():
        await conn.execute("UPDATE refresh_sessions SET is_active = false WHERE family_id = %s", (family_id,))
    # No await between the commit and this check: the pooled connection heard its own notice.
    assert cache.live_session(user_id, family_id) is None


async def test_a_change_made_by_another_process_is_heard(listening: tuple[AuthCache, Pool], fresh_dsn: str) -> None:
    cache, pool = listening
    user_id, family_id = await _insert_session(pool)
    generation = cache.generation
    cache.remember_session(user_id, family_id, _user(), generation=generation)
    async with await psycopg.AsyncConnection.connect(fresh_dsn, autocommit=True) as elsewhere:
        await elsewhere.execute("UPDATE users SET is_admin = true WHERE id = %s", (user_id,))
    await _wait_for_change(cache, generation)
    assert cache.live_session(user_id, family_id) is None


async def test_an_inactive_session_changing_again_is_no_news(listening: tuple[AuthCache, Pool], fresh_dsn: str) -> None:
    _, pool = listening
    _, family_id = await _insert_session(pool)
    async with await psycopg.AsyncConnection.connect(fresh_dsn, autocommit=True) as listener:
        async with pool.connection() as conn:
            await conn.execute("UPDATE refresh_sessions SET is_active = false WHERE family_id = %s", (family_id,))
            await listener.execute(f"LISTEN {CHANNEL}")
            await conn.execute(
                "UPDATE refresh_sessions SET revoked_reason = 'again' WHERE family_id = %s", (family_id,)
            )
            await conn.execute("SELECT pg_notify(%s, 'marker')", (CHANNEL,))
        # Notices arrive in commit order: one sent by the second update would come before the marker.
        heard = []
        async for notice in listener.notifies(timeout=CHANGE_WAIT_SECONDS):
            heard.append(notice.payload)
            if notice.payload == "marker":
                break
    assert heard == ["marker"]


async def test_a_lookup_that_raced_a_change_is_not_stored(listening: tuple[AuthCache, Pool]) -> None:
    cache, _ = listening
    user_id, family_id = uuid.uuid4(), uuid.uuid4()
    read_at = cache.generation
    cache.forget_sessions()  # a revocation committed while the lookup was in flight
    cache.remember_session(user_id, family_id, _user(), generation=read_at)
    assert cache.live_session(user_id, family_id) is None


def test_nothing_is_trusted_while_nobody_listens() -> None:
    cache = AuthCache()
    user_id, family_id = uuid.uuid4(), uuid.uuid4()
    cache.remember_session(user_id, family_id, _user(), generation=cache.generation)
    assert not cache.listening
    assert cache.live_session(user_id, family_id) is None


def test_an_expired_token_is_not_served_from_the_cache() -> None:
    cache = AuthCache()
    cache.remember_token("t", VerifiedToken(user_id=uuid.uuid4(), session_id=uuid.uuid4(), expires_at=0.0))
    assert cache.verified_token("t") is None


def test_logout_ends_the_access_token_at_once_though_it_was_cached(
    gateway: httpx.Client, admin_session: Session
) -> None:
    create_user(gateway, admin_session, "cached")
    session = login(gateway, "cached", USER_PASSWORD)
    for _ in range(3):  # the second and third are answered from the cache
        assert gateway.get("/v1/users/me", headers=session.headers).status_code == 200
    assert gateway.post("/v1/auth/logout", headers=session.headers).status_code == 204
    assert gateway.get("/v1/users/me", headers=session.headers).status_code == 401
