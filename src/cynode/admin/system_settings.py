"""System settings an admin may read and write, each with its type, allowed values and default.

Only keys listed in :data:`SETTINGS` can be written: an unknown key or a value of the wrong type is
a 400 naming the key, so a typo can never sit silently in ``system_settings``. Writing ``null``
removes the row and the default applies again. Every write bumps the row's ``version``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, get_args

from psycopg.rows import DictRow
from psycopg.types.json import Jsonb

from cynode.contracts.admin import SettingResponse
from cynode.db.pool import Connection
from cynode.nodes.project_manager import (
    EXECUTION_MODE_KEY,
    PINNED_MODEL_KEY,
    PREFER_HOST_KEY,
    SELECTION_MODE_KEY,
    ExecutionMode,
    SelectionMode,
)
from cynode.nodes.repository import PM_SETTING_PREFIX

_MODEL_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,199}")


@dataclass(frozen=True)
class SettingSpec:
    key: str
    value_type: str
    """The ``system_settings.value_type`` the value is stored with."""
    default: Any
    description: str
    allowed: tuple[str, ...] | None = None
    check: Callable[[Any], str | None] | None = None
    """Why a value of the right type is still unacceptable, or None."""

    def problem(self, value: Any) -> str | None:
        """Why ``value`` cannot be stored under this key, or None when it can."""
        if self.value_type == "boolean" and not isinstance(value, bool):
            return f"{self.key} must be true or false"
        if self.value_type == "string" and not isinstance(value, str):
            return f"{self.key} must be a string"
        if self.allowed is not None and value not in self.allowed:
            return f"{self.key} must be one of {', '.join(self.allowed)}"
        return None if self.check is None else self.check(value)


def _model_name_problem(value: str) -> str | None:
    if _MODEL_NAME.fullmatch(value):
        return None
    return f"{PM_SETTING_PREFIX}{PINNED_MODEL_KEY} must be a model name such as qwen3.5:0.8b (no spaces)"


SETTINGS: Final = {
    spec.key: spec
    for spec in (
        SettingSpec(
            f"{PM_SETTING_PREFIX}{EXECUTION_MODE_KEY}",
            "string",
            "auto",
            "Where the Project Manager model runs: a local node (force_local), an external provider "
            "(force_external; not implemented, so the system is not ready) or whichever is available (auto).",
            allowed=get_args(ExecutionMode),
        ),
        SettingSpec(
            f"{PM_SETTING_PREFIX}{SELECTION_MODE_KEY}",
            "string",
            "auto_sliding_scale",
            "How the PM model is chosen: by the node's VRAM (auto_sliding_scale) or the pinned model (fixed_model).",
            allowed=get_args(SelectionMode),
        ),
        SettingSpec(
            f"{PM_SETTING_PREFIX}{PREFER_HOST_KEY}",
            "boolean",
            True,
            "Prefer a node labelled orchestrator_host for the PM model.",
        ),
        SettingSpec(
            f"{PM_SETTING_PREFIX}{PINNED_MODEL_KEY}",
            "string",
            None,
            "The PM model every node is told to load (the orchestrator's nodes.project_manager_model wins).",
            check=_model_name_problem,
        ),
    )
}


def unknown_key_problem(key: str) -> str:
    return f"unknown system setting {key!r} (known: {', '.join(sorted(SETTINGS))})"


def setting_response(spec: SettingSpec, row: DictRow | None) -> SettingResponse:
    updated_at: datetime | None = None if row is None else row["updated_at"]
    return SettingResponse(
        key=spec.key,
        value_type=spec.value_type,
        value=None if row is None else row["value"],
        is_set=row is not None,
        default=spec.default,
        allowed=None if spec.allowed is None else list(spec.allowed),
        description=spec.description,
        version=0 if row is None else row["version"],
        updated_at=updated_at,
        updated_by=None if row is None else row["updated_by"],
    )


async def stored(conn: Connection) -> dict[str, DictRow]:
    cursor = await conn.execute(
        "SELECT key, value, version, updated_at, updated_by FROM system_settings WHERE key = ANY(%s)",
        (list(SETTINGS),),
    )
    return {row["key"]: row for row in await cursor.fetchall()}


async def write(conn: Connection, spec: SettingSpec, value: Any, updated_by: str) -> DictRow | None:
    """Store ``value`` (None deletes the row); the stored row, or None after a delete."""
    if value is None:
        await conn.execute("DELETE FROM system_settings WHERE key = %s", (spec.key,))
        return None
    cursor = await conn.execute(
        """
        INSERT INTO system_settings AS s (key, value, value_type, updated_by) VALUES (%s, %s, %s, %s)
        ON CONFLICT (key) DO UPDATE
        SET value = EXCLUDED.value, value_type = EXCLUDED.value_type, updated_by = EXCLUDED.updated_by,
            version = s.version + 1, updated_at = now()
        RETURNING key, value, version, updated_at, updated_by
        """,
        (spec.key, Jsonb(value), spec.value_type, updated_by),
    )
    return await cursor.fetchone()
