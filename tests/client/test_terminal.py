"""Text others wrote reaches the terminal without control sequences unless ``--raw`` asks for them."""

from __future__ import annotations

import json

import pytest

from cynode.client.commands import echo_output
from cynode.client.terminal import terminal_safe
from tests.client.conftest import Cli
from tests.fixtures.stack import RunningStack


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("\x1b[31mred\x1b[0m", "red"),
        ("\x1b[2J\x1b[Hwiped", "wiped"),
        ("a\x1b]0;window title\x07b", "ab"),
        ("\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\", "click"),
        ("\x1bP+q544e\x1b\\asks the terminal", "asks the terminal"),
        ("\x9b6n c1 csi", " c1 csi"),
        ("line\r\nnext", "line\nnext"),
        ("fake\rreal", "fakereal"),
        ("bell\x07 nul\x00 del\x7f", "bell nul del"),
        ("tabs\tand\nnewlines stay, caf\u00e9 \u2603 too", "tabs\tand\nnewlines stay, caf\u00e9 \u2603 too"),
        ("unterminated \x1b]0;title", "unterminated "),
    ],
)
def test_control_sequences_are_removed(written: str, shown: str) -> None:
    assert terminal_safe(written) == shown


def test_job_output_is_stripped_unless_raw(capsys: pytest.CaptureFixture[str]) -> None:
    result = {"stdout": "\x1b[1mbold\x1b[0m\n", "stderr": "\x1b]0;pwned\x07err\n"}
    echo_output(result, raw=False)
    assert capsys.readouterr() == ("bold\n", "err\n")
    echo_output(result, raw=True)
    assert capsys.readouterr() == (result["stdout"], result["stderr"])


def test_a_prompt_is_shown_without_control_sequences(cli: Cli, logged_in: RunningStack) -> None:
    prompt = "echo \x1b[2Jhi"
    created = cli("task", "create", prompt, "--mode", "commands", "--json")
    assert json.loads(created.stdout)["prompt"] == prompt  # JSON escapes it, and keeps it exact
    shown = cli("task", "get", json.loads(created.stdout)["id"])
    assert "prompt:   echo hi\n" in shown.stdout
    assert "\x1b" not in shown.stdout
