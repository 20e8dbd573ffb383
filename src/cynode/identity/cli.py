"""``cynode user unlock``: lift a handle's login lockout from the host.

It talks to the database directly (like ``cynode migrate``), so it works when every admin is
locked out of the API. The unlock is audited like the admin route's, as done ``by host``.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import click
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from cynode.composition import resolve_database
from cynode.db.embedded import EmbeddedPostgresError
from cynode.identity import rate_limit, users
from cynode.identity.audit import ClientInfo
from cynode.settings import Settings, SettingsError, load_settings

_HOST: ClientInfo = ClientInfo(ip=None, user_agent="cynode user unlock")


async def unlock_handle(settings: Settings, handle: str) -> bool:
    """Clear the lockout of ``handle``; False when no user (other than the system user) has it."""
    async with AsyncExitStack() as exits:
        dsn = await resolve_database(settings, exits)
        connection = await AsyncConnection.connect(dsn, autocommit=True, row_factory=dict_row)
        async with connection as conn, conn.transaction():
            candidate = await users.find_login_candidate(conn, handle)
            if candidate is None or candidate.user.is_system:
                return False
            await rate_limit.clear_lockout(conn, candidate.user, _HOST, by="host")
    return True


@click.command("unlock")
@click.argument("handle")
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path), help="YAML settings file.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="State directory.")
@click.option("--database-url", help="PostgreSQL URL; without one the private cluster in the data dir is used.")
def unlock(handle: str, config: Path | None, data_dir: Path | None, database_url: str | None) -> None:
    """Let HANDLE log in again at once: failed logins so far stop counting against it."""
    overrides = {"data_dir": str(data_dir) if data_dir else None, "database_url": database_url}
    try:
        settings = load_settings(config_file=config, overrides=overrides)
        unlocked = asyncio.run(unlock_handle(settings, handle))
    except (SettingsError, EmbeddedPostgresError) as exc:
        raise click.ClickException(str(exc)) from exc
    if not unlocked:
        raise click.ClickException(f"no user {handle!r}")
    click.echo(f"unlocked {handle}")
