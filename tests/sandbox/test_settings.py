"""Sandbox settings: defaults, validation and the timeout arithmetic."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from cynode.sandbox import SandboxSettings
from cynode.sandbox.settings import SandboxTimeouts


def test_defaults_follow_the_spec() -> None:
    settings = SandboxSettings()
    assert settings.timeouts == SandboxTimeouts(default_seconds=3600, max_seconds=10800)
    assert settings.max_output_bytes == 256 * 1024
    assert settings.default_image == "localhost/cynode-sandbox:latest"
    assert settings.mount_root == Path("/var/lib/cynode/state/sandbox_mounts")


@pytest.mark.parametrize(
    ("requested", "constraint", "effective"),
    [
        (None, None, 3600),
        (60, None, 60),
        (20000, None, 10800),
        (None, 120, 120),
        (600, 120, 120),
        (60, 120, 60),
    ],
)
def test_effective_timeout(requested: int | None, constraint: int | None, effective: int) -> None:
    assert SandboxSettings().effective_timeout(requested, constraint) == effective


def test_node_limits_apply_before_the_constraint() -> None:
    settings = SandboxSettings(timeouts=SandboxTimeouts(default_seconds=30, max_seconds=90))
    assert settings.effective_timeout(None) == 30
    assert settings.effective_timeout(1000) == 90
    assert settings.effective_timeout(1000, 45) == 45


@pytest.mark.parametrize(
    "overrides",
    [{"mount_root": Path("relative/mounts")}, {"run_as_user": "nobody"}, {"run_as_user": "1000:"}],
)
def test_invalid_values_are_refused(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="sandbox\\."):
        SandboxSettings(**overrides)  # type: ignore[arg-type]


def test_upstream_yaml_section_loads_and_ignores_keys_this_node_does_not_use() -> None:
    section = {
        "mode": "allow",
        "runtime": "podman",
        "rootless": True,
        "max_concurrency": 2,
        "allowed_images": ["localhost/cynode-*"],
        "default_network_policy": "restricted",
        "allowed_egress_domains": [],
        "resources": {"max_cpu_cores": 1.5, "max_memory_mb": 512, "max_pids": 128},
        "timeouts": {"default_seconds": 600, "max_seconds": 1200},
        "mounts": {"allowed_host_paths": [], "read_only_by_default": True},
        "security": {"allow_privileged": False},
    }
    settings = msgspec.convert(section, SandboxSettings)
    assert settings.max_concurrency == 2
    assert settings.resources.max_pids == 128
    assert settings.allowed_images == ("localhost/cynode-*",)
    assert settings.effective_timeout(None) == 600
