"""The dispatcher's list of dispatchable nodes, kept between passes (``cynode.dispatch.known_nodes``)
on real PostgreSQL: read once and reused, read again after a change is noticed, a spoiled read not
kept, and every change that matters to dispatch (``sql/0014``) noticed while a heartbeat is not."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import psycopg

from cynode.db.pool import Connection
from cynode.dispatch.known_nodes import KnownNodes
from cynode.dispatch.runner import DISPATCH_CHANNEL, NODES_CHANGED, NodesSource
from cynode.nodes.dispatchable import DispatchableNode
from tests.fixtures.tasks import FAST_DISPATCH, DispatchWorld, FakeWorker


class CountedReads:
    """The real nodes source, counting reads; ``during_read`` runs while a read is under way."""

    def __init__(self, world: DispatchWorld) -> None:
        self.source = NodesSource(world.secret_box, 90)
        self.reads = 0
        self.during_read: Any = None

    async def __call__(self, conn: Connection) -> list[DispatchableNode]:
        self.reads += 1
        nodes = await self.source(conn)
        if self.during_read is not None:
            self.during_read()
        return nodes


async def test_the_list_is_read_once_and_again_only_after_a_change_or_when_it_is_old(
    dispatch_world: DispatchWorld,
) -> None:
    await dispatch_world.node("kept-a", "http://127.0.0.1:9", "token")
    reads = CountedReads(dispatch_world)
    known = KnownNodes(reads, max_age=0.3)
    first = await known.get(dispatch_world.pool)
    assert [node.node_slug for node in first] == ["kept-a"]
    assert await known.get(dispatch_world.pool) is first
    assert reads.reads == 1

    await dispatch_world.node("kept-b", "http://127.0.0.1:9", "token")
    known.forget()
    assert [node.node_slug for node in await known.get(dispatch_world.pool)] == ["kept-a", "kept-b"]
    assert reads.reads == 2

    await asyncio.sleep(0.35)
    await known.get(dispatch_world.pool)
    assert reads.reads == 3


async def test_a_change_noticed_during_a_read_spoils_it(dispatch_world: DispatchWorld) -> None:
    reads = CountedReads(dispatch_world)
    known = KnownNodes(reads, max_age=60)
    reads.during_read = known.forget
    await known.get(dispatch_world.pool)
    reads.during_read = None
    await known.get(dispatch_world.pool)
    await known.get(dispatch_world.pool)
    assert reads.reads == 2


async def _notices_for(world: DispatchWorld, change: str, params: tuple[Any, ...]) -> list[str]:
    """The cynode_dispatch payloads sent while ``change`` ran."""
    conninfo = world.pool.conninfo
    assert isinstance(conninfo, str)
    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as listener:
        await listener.execute(f"LISTEN {DISPATCH_CHANNEL}")
        async with world.pool.connection() as conn:
            await conn.execute(change, params)
        payloads = []
        async for notice in listener.notifies(timeout=0.3):
            payloads.append(notice.payload)
        return payloads


async def test_every_change_that_matters_to_dispatch_is_noticed_and_a_heartbeat_is_not(
    dispatch_world: DispatchWorld,
) -> None:
    node_id = await dispatch_world.node("watched", "http://127.0.0.1:9", "token")
    changes = [
        "UPDATE nodes SET admin_state = 'draining' WHERE id = %s",
        "UPDATE nodes SET admin_state = 'enabled' WHERE id = %s",
        "UPDATE nodes SET worker_api_target_url = 'http://127.0.0.1:10' WHERE id = %s",
        "UPDATE nodes SET worker_api_bearer_token_ciphertext = NULL WHERE id = %s",
        "UPDATE nodes SET capability_hash = 'sha256:other' WHERE id = %s",
        "UPDATE nodes SET config_version = 'next' WHERE id = %s",
        "UPDATE nodes SET reregistration_required = true WHERE id = %s",
        "DELETE FROM nodes WHERE id = %s",
    ]
    heartbeat = await _notices_for(dispatch_world, "UPDATE nodes SET last_seen_at = now() WHERE id = %s", (node_id,))
    assert heartbeat == []
    for change in changes:
        assert await _notices_for(dispatch_world, change, (node_id,)) == [NODES_CHANGED], change


async def test_a_drained_node_gets_no_new_job_even_though_the_dispatcher_knew_it(
    dispatch_world: DispatchWorld,
) -> None:
    drained, spare = FakeWorker().start(), FakeWorker().start()
    try:
        drained_id = await dispatch_world.fake_node(drained, "a-drained")
        await dispatch_world.fake_node(spare, "b-spare")
        # A long safety poll and list age: only the notice can tell the dispatcher.
        settings = msgspec.structs.replace(FAST_DISPATCH, safety_poll_seconds=60.0)
        dispatch_world.start(dispatch_world.dispatcher(settings))
        first = await dispatch_world.wait_job(await dispatch_world.create("echo first"), within=5)
        async with dispatch_world.pool.connection() as conn:
            await conn.execute("UPDATE nodes SET admin_state = 'draining' WHERE id = %s", (drained_id,))
        second = await dispatch_world.wait_job(await dispatch_world.create("echo second"), within=5)
    finally:
        drained.stop()
        spare.stop()

    assert (first["status"], second["status"]) == ("completed", "completed")
    assert drained.run_ids() == [str(first["id"])]
    assert spare.run_ids() == [str(second["id"])]
