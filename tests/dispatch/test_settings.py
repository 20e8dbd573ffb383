"""Dispatch settings: defaults, the lease rule, and reading them from the process settings."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from cynode.dispatch.settings import DispatchSettings
from cynode.sandbox import DEFAULT_SANDBOX_IMAGE
from cynode.settings import load_settings


def test_defaults_use_the_sandbox_image_and_renew_well_within_the_lease() -> None:
    settings = DispatchSettings()

    assert settings.sandbox_image == DEFAULT_SANDBOX_IMAGE
    assert settings.lease_renew_seconds * 2 < settings.lease_seconds


def test_a_renewal_slower_than_the_lease_is_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match="lease_renew_seconds must be shorter"):
        msgspec.convert({"lease_seconds": 5, "lease_renew_seconds": 5}, DispatchSettings)


def test_process_settings_carry_the_dispatch_section(tmp_path: Path) -> None:
    settings = load_settings(env={"CYNODE_DISPATCH_LEASE_SECONDS": "45"}, overrides={"data_dir": str(tmp_path)})

    assert settings.dispatch == DispatchSettings(lease_seconds=45)
