"""Parsing podman's multiplexed log stream, however the bytes are chunked."""

from __future__ import annotations

import pytest

from cynode.sandbox.capture import frame_payloads


def frame(payload: bytes, stream: int = 1) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


STREAM = frame(b"hello ") + frame(b"") + frame(b"world\n") + frame(b"x" * 70000)


@pytest.mark.parametrize("chunk_size", [1, 3, 8, 9, 4096, len(STREAM)])
def test_payloads_are_reassembled_from_any_chunking(chunk_size: int) -> None:
    chunks = [STREAM[i : i + chunk_size] for i in range(0, len(STREAM), chunk_size)]
    assert b"".join(frame_payloads(chunks)) == b"hello world\n" + b"x" * 70000


def test_no_payload_piece_is_larger_than_its_chunk() -> None:
    pieces = list(frame_payloads([STREAM[:20], STREAM[20:]]))
    assert max(len(piece) for piece in pieces) <= len(STREAM) - 20
