"""The ``chat:`` settings section: honoured from the environment, refused with a named reason when bad."""

from __future__ import annotations

from pathlib import Path

import pytest

from cynode.settings import SettingsError, load_settings


def test_chat_settings_come_from_the_environment(tmp_path: Path) -> None:
    env = {"CYNODE_CHAT_WAIT_CAP_SECONDS": "30", "CYNODE_CHAT_TRANSIENT_RETRIES": "0"}
    settings = load_settings(env=env, overrides={"data_dir": str(tmp_path)})
    assert settings.chat.wait_cap_seconds == 30
    assert settings.chat.transient_retries == 0
    assert load_settings(env={}, overrides={"data_dir": str(tmp_path)}).chat.wait_cap_seconds == 120


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CYNODE_CHAT_WAIT_CAP_SECONDS", "0"),
        ("CYNODE_CHAT_TRANSIENT_RETRIES", "-1"),
        ("CYNODE_CHAT_THREAD_IDLE_SECONDS", "x"),
    ],
)
def test_a_bad_chat_setting_is_refused_by_name(tmp_path: Path, name: str, value: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(env={name: value}, overrides={"data_dir": str(tmp_path)})
    assert name in str(refused.value)
