"""Query parameters made from what a caller typed."""

from __future__ import annotations


def comparable_text(value: str) -> str | None:
    """``value`` as a text parameter to look a row up by, or None (which equals nothing) when it holds
    a NUL: PostgreSQL text cannot, so no stored name has one, and sending it would fail the query."""
    return None if "\x00" in value else value
