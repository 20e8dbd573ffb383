"""Text from the system made safe for a terminal.

Job output, prompts and summaries are written by whoever ran the job or created the task; printed
as they are, escape sequences in them could rewrite the screen, hide lines, set the window title,
or on some terminals answer back as if typed. :func:`terminal_safe` removes escape sequences and
every other control character except newline and tab (``\\r\\n`` becomes ``\\n``; a lone ``\\r``,
which can overprint a line, is dropped).
"""

from __future__ import annotations

import re
from typing import Final

_ESCAPE_SEQUENCES: Final = re.compile(
    r"""
    (?:\x1b\[|\x9b) [0-?]* [\x20-/]* [@-~]              # CSI: cursor, colour, erase, ...
    | (?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f]) .*? (?:\x07|\x1b\\|\x9c|$)   # OSC, DCS, SOS, PM, APC strings
    | \x1b [\x20-/]* [0-~]                               # any other escape sequence
    """,
    re.VERBOSE | re.DOTALL,
)
_CONTROL_CHARACTERS: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """``text`` without escape sequences or control characters other than newline and tab."""
    return _CONTROL_CHARACTERS.sub("", _ESCAPE_SEQUENCES.sub("", text.replace("\r\n", "\n")))
