"""The ``cynode`` command: ``serve`` a role set, ``migrate`` the database.

Owns argument parsing and process lifecycle (signals, exit codes). Everything else is delegated to
the composition root.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from cynode import __version__, eventloop
from cynode.client.admin_commands import admin_commands, user
from cynode.client.chat import chat, models
from cynode.client.commands import client_commands
from cynode.client.status import status
from cynode.composition import Stack, parse_roles, resolve_database
from cynode.db.embedded import EmbeddedPostgresError
from cynode.db.migrations import apply_migrations
from cynode.http.server import PortInUseError
from cynode.identity.cli import unlock as unlock_user
from cynode.logs import configure_logging
from cynode.ops.doctor import report_checks, run_checks
from cynode.ops.sandbox_images import sandbox
from cynode.settings import Settings, SettingsError, load_settings
from cynode.tls import write_lab_certificates


def _overrides(data_dir: Path | None, database_url: str | None, node_config: Path | None, log_level: str | None,
               assignments: Sequence[str]) -> dict[str, Any]:  # fmt: skip
    overrides: dict[str, Any] = {
        "data_dir": str(data_dir) if data_dir else None,
        "database_url": database_url,
        "node_config": str(node_config) if node_config else None,
        "log_level": log_level,
    }
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE, got {assignment!r}", param_hint="--set")
        overrides[name.strip()] = value
    return overrides


def _load(config: Path | None, overrides: dict[str, Any]) -> Settings:
    try:
        settings = load_settings(config_file=config, overrides=overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    configure_logging(settings.log_level)
    return settings


common_options = [
    click.option("--config", type=click.Path(dir_okay=False, path_type=Path), help="YAML settings file."),
    click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="State directory."),
    click.option("--database-url", help="PostgreSQL URL; without one a private cluster runs in the data dir."),
    click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"])),
    click.option("--set", "assignments", multiple=True, metavar="NAME=VALUE",
                 help="Any setting by dotted name, e.g. --set gateway.port=8080."),
]  # fmt: skip


def with_common_options(command: Any) -> Any:
    for option in reversed(common_options):
        command = option(command)
    return command


@click.group()
@click.version_option(__version__, prog_name="cynode")
def main() -> None:
    """CyNode: a local-first orchestrator for self-hosted teams."""


@main.command()
@click.option(
    "--role",
    "roles",
    multiple=True,
    default=("all",),
    show_default=True,
    help="all, orchestrator, gateway, node; repeat or separate with commas.",
)
@click.option(
    "--node-config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Node startup YAML (default /etc/cynode/node.yaml).",
)
@with_common_options
def serve(roles: tuple[str, ...], node_config: Path | None, config: Path | None, data_dir: Path | None,
          database_url: str | None, log_level: str | None, assignments: tuple[str, ...]) -> None:  # fmt: skip
    """Run the given roles in this process until SIGINT or SIGTERM."""
    try:
        role_set = parse_roles(roles)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--role") from exc
    settings = _load(config, _overrides(data_dir, database_url, node_config, log_level, assignments))
    try:
        eventloop.run(_serve(Stack(settings, role_set)))
    except (PortInUseError, EmbeddedPostgresError, SettingsError) as exc:
        raise click.ClickException(str(exc)) from exc


async def _serve(stack: Stack) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with stack:
        for role, served in stack.apps.items():
            click.echo(f"cynode {role.value}: {served.base_url}", err=True)
        stopped = asyncio.create_task(stop.wait())
        failed = asyncio.create_task(stack.failed.wait())
        await asyncio.wait({stopped, failed}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        failed.cancel()
    if stack.failure is not None:
        raise click.ClickException(f"stopping: {stack.failure}")


@main.command()
@with_common_options
def migrate(config: Path | None, data_dir: Path | None, database_url: str | None, log_level: str | None,
            assignments: tuple[str, ...]) -> None:  # fmt: skip
    """Apply pending database migrations and exit."""
    settings = _load(config, _overrides(data_dir, database_url, None, log_level, assignments))
    try:
        applied = asyncio.run(_migrate(settings))
    except EmbeddedPostgresError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"applied {len(applied)} migration(s){': ' if applied else ''}{', '.join(map(str, applied))}")


@main.command()
@with_common_options
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor(config: Path | None, data_dir: Path | None, database_url: str | None, log_level: str | None,
           assignments: tuple[str, ...], as_json: bool) -> None:  # fmt: skip
    """Check that this host can run CyNode; every problem comes with its fix. Exit 1 on any failure."""
    checks = run_checks(_load(config, _overrides(data_dir, database_url, None, log_level, assignments)))
    report_checks(checks, as_json)
    raise SystemExit(0 if all(check.ok for check in checks) else 1)


async def _migrate(settings: Settings) -> list[int]:
    from contextlib import AsyncExitStack

    async with AsyncExitStack() as exits:
        dsn = await resolve_database(settings, exits)
        return await apply_migrations(dsn)


@main.group()
def tls() -> None:
    """TLS helpers for deployments across hosts."""


@tls.command()
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Directory to write.")
@click.option("--host", "hosts", multiple=True, help="Name or address the server certificate is for (repeatable).")
@click.option("--days", default=365, show_default=True, type=click.IntRange(min=1), help="Validity.")
def selfsigned(out: Path, hosts: tuple[str, ...], days: int) -> None:
    """Make a lab CA and a server certificate signed by it (loopback names always included)."""
    made = write_lab_certificates(out, hosts, days=days)
    click.echo(f"CA certificate:     {made.ca_cert}")
    click.echo(f"server certificate: {made.server_cert}")
    click.echo(f"server key:         {made.server_key}")
    click.echo(f"server pin (orchestrator.tls.pinned_sha256): {made.server_pin}")


for client_command in client_commands:
    main.add_command(client_command)
main.add_command(chat)
main.add_command(models)
for operator_command in [*admin_commands, status, sandbox]:
    main.add_command(operator_command)

# The host-side unlock reaches the database directly, for when every admin is locked out.
user.add_command(unlock_user)


if __name__ == "__main__":
    sys.exit(main())
