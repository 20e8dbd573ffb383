"""Settings precedence, error messages, and secret handling."""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cynode.secrets import persistent_secret, read_secret
from cynode.settings import SettingsError, load_settings


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cynode.yaml"
    path.write_text(text)
    return path


def test_defaults_use_the_documented_ports(tmp_path: Path) -> None:
    settings = load_settings(env={"XDG_DATA_HOME": str(tmp_path)})
    assert (settings.gateway.port, settings.control_plane.port, settings.worker_api.port) == (12080, 12082, 12090)
    assert settings.data_dir == tmp_path / "cynode"
    assert settings.database_url is None
    assert settings.control_plane_public_url == "http://127.0.0.1:12082"


def test_flags_beat_env_beat_yaml_beat_defaults(tmp_path: Path) -> None:
    config = _yaml(
        tmp_path, "gateway:\n  port: 1001\n  host: 0.0.0.0\ncontrol_plane:\n  port: 1002\nlog_level: debug\n"
    )
    env = {"CYNODE_GATEWAY_PORT": "2001", "CYNODE_CONTROL_PLANE_PORT": "2002", "CYNODE_DATA_DIR": str(tmp_path)}
    settings = load_settings(config_file=config, env=env, overrides={"gateway.port": "3001"})
    assert settings.gateway.port == 3001  # flag
    assert settings.control_plane.port == 2002  # env over YAML
    assert settings.gateway.host == "0.0.0.0"  # YAML over default
    assert settings.log_level == "debug"
    assert settings.worker_api.port == 12090  # default


def test_bad_env_value_names_the_setting_and_its_source(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"gateway\.port \(env CYNODE_GATEWAY_PORT\)"):
        load_settings(env={"CYNODE_GATEWAY_PORT": "eighty", "CYNODE_DATA_DIR": str(tmp_path)})


def test_out_of_range_yaml_value_names_the_file(tmp_path: Path) -> None:
    config = _yaml(tmp_path, "worker_api:\n  port: 70000\n")
    with pytest.raises(SettingsError, match=r"worker_api\.port \(config file .*cynode\.yaml\)"):
        load_settings(config_file=config, env={})


def test_unknown_setting_is_refused(tmp_path: Path) -> None:
    config = _yaml(tmp_path, "gateway:\n  prot: 80\n")
    with pytest.raises(SettingsError, match="prot"):
        load_settings(config_file=config, env={})


def test_secrets_in_yaml_are_refused(tmp_path: Path) -> None:
    config = _yaml(tmp_path, "jwt_secret: hunter2\n")
    with pytest.raises(SettingsError, match="never from YAML") as failure:
        load_settings(config_file=config, env={})
    assert "hunter2" not in str(failure.value)


def test_invalid_yaml_is_reported(tmp_path: Path) -> None:
    config = _yaml(tmp_path, "gateway: [unclosed\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(config_file=config, env={})


def test_secret_from_file_variant(tmp_path: Path) -> None:
    secret_file = tmp_path / "psk"
    secret_file.write_text("from-a-file\n")
    assert read_secret("node_registration_psk", {"CYNODE_NODE_REGISTRATION_PSK_FILE": str(secret_file)}) == (
        "from-a-file"
    )
    assert read_secret("node_registration_psk", {}) is None


def test_unreadable_secret_file_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="CYNODE_ADMIN_PASSWORD_FILE"):
        read_secret("admin_password", {"CYNODE_ADMIN_PASSWORD_FILE": str(tmp_path / "missing")})


def test_generated_secret_is_private_and_stable_under_concurrency(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        values = set(pool.map(lambda _: persistent_secret("jwt_secret", tmp_path, {}), range(16)))
    assert len(values) == 1
    secret_file = tmp_path / "secrets" / "jwt_secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert persistent_secret("jwt_secret", tmp_path, {}) == values.pop()
    assert not [p for p in os.listdir(tmp_path / "secrets") if p.endswith(".tmp")]


def test_configured_secret_wins_over_generated(tmp_path: Path) -> None:
    persistent_secret("jwt_secret", tmp_path, {})
    assert persistent_secret("jwt_secret", tmp_path, {"CYNODE_JWT_SECRET": "configured"}) == "configured"
