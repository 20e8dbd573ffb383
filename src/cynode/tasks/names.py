"""Task names: lowercase words joined by single dashes, unique per user through ``-2``, ``-3`` suffixes
(one more than the highest in use, picked by ``cynode_free_task_name`` in ``sql/0013_task_create.sql``).

A name the user gives is normalized; without one the name is made from the first words of the
prompt. Names are how users refer to tasks besides their UUID (``GET /v1/tasks/{name}``).
"""

from __future__ import annotations

import re
import unicodedata

_NOT_NAME_CHARS = re.compile(r"[^a-z0-9]+")
# Short enough to read in a listing and to leave room for a uniqueness suffix.
MAX_NAME_CHARS = 60
PROMPT_NAME_WORDS = 5
FALLBACK_NAME = "task"


def _ascii_lower(text: str) -> str:
    # Accented letters keep their base letter (Ü -> u) instead of vanishing.
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def normalize_name(text: str) -> str:
    """``text`` lowercased, every run of other characters turned into one dash, cut at a word end."""
    name = _NOT_NAME_CHARS.sub("-", _ascii_lower(text)).strip("-")
    if len(name) > MAX_NAME_CHARS:
        cut = name[:MAX_NAME_CHARS]
        # Cut at the last complete word unless that would leave almost nothing.
        name = cut.rsplit("-", 1)[0] if "-" in cut[MAX_NAME_CHARS // 2 :] else cut
        name = name.strip("-")
    return name


def name_from_prompt(prompt: str) -> str:
    """A default name: the prompt's first few words, normalized (``task`` when none remain)."""
    words = _NOT_NAME_CHARS.sub(" ", _ascii_lower(prompt)).split()
    return normalize_name(" ".join(words[:PROMPT_NAME_WORDS])) or FALLBACK_NAME
