"""The dispatchable nodes as one dispatcher last read them, kept between its passes.

Reading them costs a pass a statement and a decode of every node's capability report, on the path
from a task's notice to its claim. The list is read again when a ``nodes`` notice says a node
changed (``sql/0014_node_changes.sql``), when the dispatcher's listener (re)connects (it may have
missed notices), after a call to a node went wrong, or once the list is older than ``max_age``
(a heartbeat going stale sends no notice). A change noticed while a read is under way spoils that
read, so the next pass reads again. The claim itself re-checks holds and free slots in the database.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from cynode.db.pool import Connection, Pool
from cynode.nodes.dispatchable import DispatchableNode

NodesReader = Callable[[Connection], Awaitable[list[DispatchableNode]]]


class KnownNodes:
    def __init__(self, read: NodesReader, max_age: float) -> None:
        self._read = read
        self._max_age = max_age
        self._changes = 0
        self._nodes: list[DispatchableNode] | None = None
        self._read_at = 0.0

    def forget(self) -> None:
        """Something about the nodes changed: the next ``get`` reads them again."""
        self._changes += 1
        self._nodes = None

    async def get(self, pool: Pool) -> list[DispatchableNode]:
        if self._nodes is not None and time.monotonic() - self._read_at < self._max_age:
            return self._nodes
        changes, read_at = self._changes, time.monotonic()
        async with pool.connection() as conn:
            nodes = await self._read(conn)
        if changes == self._changes:
            self._nodes, self._read_at = nodes, read_at
        return nodes
