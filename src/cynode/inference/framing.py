"""How a chat request is put to a model that has no chat template.

A base model (the shipped Gemma 3 270M GGUF) answers chat requests poorly: llama.cpp falls back to a
chat format the model never saw and usually returns nothing. Such a model gets a plain
question/answer frame through ``/v1/completions`` instead, cut at the next ``Question:``. Whether a
model has a template is read from its GGUF metadata (``tokenizer.chat_template``); a model served
by another backend (Ollama, an existing service) applies its own template, so it is never framed.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO, Final

from cynode.contracts.openai import ChatMessage

CHAT_TEMPLATE_KEY: Final = "tokenizer.chat_template"
QUESTION: Final = "Question:"
ANSWER: Final = "Answer:"
STOP_SEQUENCES: Final = (f"\n{QUESTION}", "\n\n\n")

_GGUF_MAGIC = b"GGUF"
_STRING_TYPE = 8
_ARRAY_TYPE = 9
# Byte sizes of the GGUF scalar value types (uint8 .. float64), by type id.
_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


class GgufError(ValueError):
    """The file is not a GGUF model this reader understands."""


def _read(stream: BinaryIO, fmt: str) -> int:
    size = struct.calcsize(fmt)
    data = stream.read(size)
    if len(data) != size:
        raise GgufError("truncated GGUF header")
    value: int = struct.unpack(fmt, data)[0]
    return value


def _skip_value(stream: BinaryIO, value_type: int) -> None:
    if value_type in _SCALAR_SIZES:
        stream.seek(_SCALAR_SIZES[value_type], 1)
    elif value_type == _STRING_TYPE:
        stream.seek(_read(stream, "<Q"), 1)
    elif value_type == _ARRAY_TYPE:
        item_type, count = _read(stream, "<I"), _read(stream, "<Q")
        if item_type in _SCALAR_SIZES:
            stream.seek(_SCALAR_SIZES[item_type] * count, 1)
        else:
            for _ in range(count):
                _skip_value(stream, item_type)
    else:
        raise GgufError(f"unknown GGUF value type {value_type}")


def has_chat_template(model_path: Path) -> bool:
    """Whether the GGUF file's metadata carries a chat template (reads the header only)."""
    with model_path.open("rb") as stream:
        if stream.read(4) != _GGUF_MAGIC:
            raise GgufError(f"{model_path} is not a GGUF file")
        _read(stream, "<I")  # format version
        _read(stream, "<Q")  # tensor count
        for _ in range(_read(stream, "<Q")):
            key = stream.read(_read(stream, "<Q"))
            value_type = _read(stream, "<I")
            if key == CHAT_TEMPLATE_KEY.encode():
                return value_type == _STRING_TYPE and _read(stream, "<Q") > 0
            _skip_value(stream, value_type)
    return False


def question_answer_prompt(messages: list[ChatMessage]) -> str:
    """The conversation as a question/answer text ending where the model's answer starts.

    System messages lead as plain text; each user turn is a question and each assistant turn its
    answer, so a multi-turn chat reads as a transcript the model continues.
    """
    lines: list[str] = []
    for message in messages:
        text = message.text().strip()
        if not text:
            continue
        if message.role == "assistant":
            lines.append(f"{ANSWER} {text}")
        elif message.role in ("system", "developer"):
            lines.append(text)
        else:
            lines.append(f"{QUESTION} {text}")
    lines.append(ANSWER)
    return "\n".join(lines)
