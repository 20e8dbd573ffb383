"""``cynode chat`` and ``cynode models`` against the real all-in-one stack and its embedded model."""

from __future__ import annotations

import json

import pytest

from tests.fixtures.cli import Cli, log_in
from tests.fixtures.inference import MODEL_ALIAS
from tests.fixtures.stack import RunningStack


@pytest.fixture
def chat_cli(cli: Cli, chat_stack: RunningStack) -> Cli:
    assert log_in(cli, chat_stack).exit_code == 0
    return cli


def test_models_lists_the_default_and_the_nodes_model(chat_cli: Cli) -> None:
    listed = chat_cli("models")
    assert listed.exit_code == 0, listed.output
    assert listed.stdout.splitlines()[0] == "cynodeai.pm"
    assert MODEL_ALIAS in listed.stdout.splitlines()
    as_json = json.loads(chat_cli("models", "--json").stdout)
    assert as_json["object"] == "list"


def test_one_shot_prints_the_streamed_answer(chat_cli: Cli) -> None:
    answered = chat_cli("chat", "-m", "What is the capital of France?")
    assert answered.exit_code == 0, answered.output
    assert answered.stdout.strip()


def test_one_shot_json_is_the_completion(chat_cli: Cli) -> None:
    answered = chat_cli("chat", "-m", "Hello", "--model", MODEL_ALIAS, "--json")
    assert answered.exit_code == 0, answered.output
    completion = json.loads(answered.stdout)
    assert completion["model"] == MODEL_ALIAS
    assert completion["choices"][0]["message"]["content"].strip()


def test_interactive_keeps_the_conversation_until_exit(chat_cli: Cli) -> None:
    answered = chat_cli("chat", input="Hello\nWhat did I just say?\n/exit\nnever sent\n")
    assert answered.exit_code == 0, answered.output
    assert answered.stdout.count("you> ") == 3
    assert "never sent" not in answered.stdout


def test_an_unknown_model_fails_with_the_gateways_message(chat_cli: Cli) -> None:
    failed = chat_cli("chat", "-m", "hi", "--model", "no-such-model")
    assert failed.exit_code == 1
    assert "The model 'no-such-model' does not exist (HTTP 404)" in failed.stderr


def test_without_login_it_says_to_log_in(cli: Cli) -> None:
    failed = cli("chat", "-m", "hi")
    assert failed.exit_code == 1
    assert "cynode login" in failed.stderr
