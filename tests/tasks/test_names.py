"""Task names: normalization, names from prompts, uniqueness suffixes."""

from __future__ import annotations

import pytest

from cynode.tasks.names import MAX_NAME_CHARS, name_from_prompt, normalize_name


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("My Task", "my-task"),
        ("  --Deploy__Docs!!--  ", "deploy-docs"),
        ("Ünïcode ünd Ümlauts", "unicode-und-umlauts"),
        ("日本語", ""),
        ("release 2.0", "release-2-0"),
        ("!!!", ""),
    ],
)
def test_normalize(text: str, name: str) -> None:
    assert normalize_name(text) == name


def test_long_names_are_cut_at_a_word_end() -> None:
    name = normalize_name(" ".join(["word"] * 40))

    assert len(name) <= MAX_NAME_CHARS
    assert name.endswith("word")
    assert "--" not in name


def test_name_from_prompt_takes_the_first_words() -> None:
    assert name_from_prompt("What is 2+2? Tell me in detail please") == "what-is-2-2-tell"
    assert name_from_prompt("echo hello world") == "echo-hello-world"
    assert name_from_prompt("$$$ ***") == "task"
