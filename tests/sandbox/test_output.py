"""Output capture: byte limit, UTF-8 boundary, truncation flags and notes."""

from __future__ import annotations

import pytest

from cynode.sandbox.output import OutputCapture, utf8_boundary

E_ACUTE = "é".encode()  # 2 bytes
EURO = "€".encode()  # 3 bytes
GRINNING = "😀".encode()  # 4 bytes


def capture(chunks: list[bytes], limit: int, note: str = "") -> tuple[str, bool]:
    output = OutputCapture(limit)
    for chunk in chunks:
        output.feed(chunk)
    result = output.result(note)
    return result.text, result.truncated


@pytest.mark.parametrize(
    ("data", "limit", "cut"),
    [
        (b"abc", 10, 3),
        (b"abcdef", 3, 3),
        (b"a" + E_ACUTE, 2, 1),
        (b"a" + E_ACUTE, 3, 3),
        (b"a" + EURO, 2, 1),
        (b"a" + EURO, 3, 1),
        (b"a" + EURO, 4, 4),
        (b"a" + GRINNING, 4, 1),
        (b"a" + GRINNING, 5, 5),
        (b"\x80\x80\x80\x80\x80", 3, 3),
        (b"", 0, 0),
    ],
)
def test_utf8_boundary_never_splits_a_character(data: bytes, limit: int, cut: int) -> None:
    assert utf8_boundary(data, limit) == cut


def test_output_within_the_limit_is_kept_whole() -> None:
    assert capture([b"hello ", "wörld".encode()], 64) == ("hello wörld", False)


def test_output_is_cut_at_the_limit_and_flagged() -> None:
    assert capture([b"x" * 100, b"y" * 100], 150) == ("x" * 100 + "y" * 50, True)


def test_a_character_straddling_the_cut_is_dropped_whole() -> None:
    text, truncated = capture([b"a" * 5 + GRINNING[:2], GRINNING[2:] + b"tail"], 7)
    assert (text, truncated) == ("a" * 5, True)


def test_output_exactly_at_the_limit_is_not_truncated() -> None:
    assert capture([b"a" * 6 + E_ACUTE], 8) == ("a" * 6 + "é", False)


def test_memory_stays_bounded_however_much_arrives() -> None:
    output = OutputCapture(1024)
    for _ in range(1000):
        output.feed(b"z" * 65536)
    assert output.full
    result = output.result()
    assert len(result.text) == 1024
    assert result.truncated


def test_invalid_bytes_become_replacement_characters_within_the_limit() -> None:
    text, truncated = capture([b"\xff" * 10], 10)
    assert len(text.encode()) <= 10
    assert set(text) == {"\ufffd"}
    assert truncated


def test_an_incomplete_character_at_the_end_of_untruncated_output_is_replaced() -> None:
    assert capture([b"ab\xc3"], 10) == ("ab\ufffd", False)


def test_a_note_is_appended_inside_the_limit() -> None:
    assert capture([b"abc"], 20, "\n[note]") == ("abc\n[note]", False)
    text, truncated = capture([b"x" * 20], 20, "\n[note]")
    assert text == "x" * 13 + "\n[note]"
    assert truncated
