"""Payloads the web console's own script reads (not part of the user API)."""

import msgspec

from cynode.contracts.tasks import TaskStatus

__all__ = ["LiveTaskResponse"]


class LiveTaskResponse(msgspec.Struct, kw_only=True):
    """Body of GET /tasks/{id}/live: what the task page refreshes while the task runs."""

    status: TaskStatus
    finished: bool
    stdout: str
    stderr: str
