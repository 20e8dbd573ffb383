"""Bounded capture of a job's stdout or stderr as valid UTF-8 text.

Owns the output limit rules: keep at most ``limit`` bytes, never hold more than that in memory
however much the job writes, cut on a UTF-8 character boundary (a multi-byte character split by
the cut is dropped whole) and report whether anything was cut.

Stored results must be text a JSON column accepts, so bytes that are not UTF-8 text and NUL
characters (which PostgreSQL cannot hold in ``jsonb``) become U+FFFD, and ``replaced`` says so.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CapturedOutput:
    text: str
    truncated: bool
    replaced: bool = False
    """Some bytes were not UTF-8 text, or were NUL, and each became U+FFFD."""


REPLACEMENT = "\ufffd"


def storable_text(data: bytes) -> tuple[str, bool]:
    """``data`` as text with invalid UTF-8 and NUL replaced by U+FFFD, and whether anything was."""
    text = data.decode("utf-8", errors="replace")
    # Counting, because the job may print U+FFFD itself.
    replaced = text.count(REPLACEMENT) > data.count(REPLACEMENT.encode())
    if "\x00" in text:
        text, replaced = text.replace("\x00", REPLACEMENT), True
    return text, replaced


def utf8_boundary(data: bytes | bytearray, limit: int) -> int:
    """The largest cut point <= ``limit`` that ends ``data`` on a whole UTF-8 character."""
    end = min(limit, len(data))
    # The last character before the cut starts at most 3 bytes back (4-byte sequences); if its
    # sequence runs past the cut it is dropped whole. Stray continuation bytes are left for
    # the decoder to replace.
    for start in range(end - 1, max(end - 5, -1), -1):
        lead = data[start]
        if lead & 0xC0 != 0x80:
            return start if start + _sequence_length(lead) > end else end
    return end


def _sequence_length(lead: int) -> int:
    if lead >= 0xF0:
        return 4 if lead < 0xF8 else 1
    if lead >= 0xE0:
        return 3
    if lead >= 0xC0:
        return 2
    return 1


class OutputCapture:
    """Accumulates one stream up to ``limit`` bytes and remembers whether more arrived.

    ``dropped_earlier``: some of the stream was lost before it reached this capture (the container
    log was trimmed at its cap), so the result is reported truncated however little is kept.
    """

    def __init__(self, limit: int, *, dropped_earlier: bool = False) -> None:
        self._limit = limit
        self._kept = bytearray()
        self._overflowed = False
        self._dropped_earlier = dropped_earlier

    @property
    def full(self) -> bool:
        """True once more than ``limit`` bytes arrived; further input changes nothing."""
        return self._overflowed

    @property
    def kept(self) -> bytes:
        """The raw bytes kept so far (at most ``limit``), before any replacement."""
        return bytes(self._kept)

    def feed(self, chunk: bytes) -> None:
        room = self._limit - len(self._kept)
        if len(chunk) > room:
            self._overflowed = True
        self._kept += chunk[: max(room, 0)]

    def result(self, note: str = "") -> CapturedOutput:
        """The captured text, with ``note`` appended inside the limit (captured text gives way)."""
        note = note.encode()[: self._limit].decode(errors="ignore")
        budget = self._limit - len(note.encode())
        cut = self._overflowed or len(self._kept) > budget
        kept = self._kept[: utf8_boundary(self._kept, budget)] if cut else self._kept
        text, replaced = storable_text(bytes(kept))
        encoded = text.encode()
        if len(encoded) > budget:
            # A replacement character is 3 bytes for 1 invalid input byte, so cut the clean text again.
            text = encoded[: utf8_boundary(encoded, budget)].decode()
            cut = True
        return CapturedOutput(text=text + note, truncated=cut or self._dropped_earlier, replaced=replaced)
