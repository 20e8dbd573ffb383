"""Reading a container's stdout or stderr back through the podman API, bounded.

Owns podman's multiplexed log framing and the read that stops at the output limit: of a stopped
container for its result, of a running one for its output so far. Following the log while the job
runs is not used: podman 4.3 ends a follow when the container exits and drops lines it has not sent
yet, so a running job's output is read whole again (up to the limit) each time it is asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Literal

from podman import PodmanClient
from podman.errors import APIError

from cynode.sandbox.output import OutputCapture

log = logging.getLogger(__name__)

Stream = Literal["stdout", "stderr"]

_LOG_CHUNK = 64 * 1024
_FRAME_HEADER = 8


def frame_payloads(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Payload bytes of podman's multiplexed log stream (8-byte header: stream, pad, u32 length)."""
    header = b""
    remaining = 0
    for chunk in chunks:
        position = 0
        while position < len(chunk):
            if remaining == 0:
                taken = chunk[position : position + _FRAME_HEADER - len(header)]
                header += taken
                position += len(taken)
                if len(header) == _FRAME_HEADER:
                    remaining = int.from_bytes(header[4:], "big")
                    header = b""
                continue
            piece = chunk[position : position + remaining]
            position += len(piece)
            remaining -= len(piece)
            yield piece


def read_stream(
    client: PodmanClient,
    container_id: str,
    stream: Stream,
    limit: int,
    *,
    log_trimmed: bool = False,
    preamble: bytes = b"",
) -> OutputCapture:
    """Up to ``limit`` bytes of one stream of a container (empty when podman cannot say), after
    ``preamble`` (the node's own lines ahead of it).

    ``log_trimmed``: conmon trimmed the log at its cap while the job ran. The log holds both
    streams, so either may have lost bytes, and the capture is reported truncated.
    """
    capture = OutputCapture(limit, dropped_earlier=log_trimmed)
    capture.feed(preamble)
    params = {"follow": False, "stdout": stream == "stdout", "stderr": stream == "stderr"}
    try:
        response = client.api.get(f"/containers/{container_id}/logs", params=params, stream=True)
        response.raise_for_status()
    except (APIError, OSError) as exc:
        log.warning("sandbox_log_read_failed", extra={"container_id": container_id, "error": str(exc)})
        return capture
    try:
        for payload in frame_payloads(response.iter_content(chunk_size=_LOG_CHUNK)):
            capture.feed(payload)
            if capture.full:
                # Closing the response stops podman reading a log we would only throw away.
                break
    finally:
        response.close()
    return capture
