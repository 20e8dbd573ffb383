"""The admin commands of ``cynode``: the ``user``, ``node``, ``settings`` and ``credentials`` groups.

They speak the gateway's admin API with the stored session (``cynode login`` as an admin first).
Each prints a short human summary, or with ``--json`` the gateway's answer; failures exit with the
statuses of :mod:`cynode.client.exit_codes`. Secrets (new passwords, provider keys) are read from
an environment variable, a hidden prompt on a terminal or the first line of stdin, never from argv.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

import click

from cynode.client.admin_api import AdminClient
from cynode.client.commands import json_option, print_answer, session_client
from cynode.client.exit_codes import ExitCode, exits_by_status, fail
from cynode.contracts.admin import (
    AddCredentialRequest,
    AdminStateChange,
    CredentialResponse,
    NodeResponse,
    SettingResponse,
)
from cynode.contracts.identity import CreateUserRequest, UserResponse

__all__ = ["admin_commands"]

P = ParamSpec("P")
R = TypeVar("R")
Answer = TypeVar("Answer")

NEW_PASSWORD_ENV = "CYNODE_NEW_PASSWORD"  # noqa: S105 - the variable's name, not a password
CREDENTIAL_SECRET_ENV = "CYNODE_CREDENTIAL_SECRET"  # noqa: S105 - the variable's name, not a secret


def operator_command(command: Callable[P, R]) -> Callable[P, R]:
    """Give a command ``--json`` and exit statuses by the gateway's answer."""
    return json_option(exits_by_status(command))


def answer(as_json: bool, call: Callable[[AdminClient], Answer], show_human: Callable[[Answer], None]) -> None:
    with session_client(AdminClient) as client:
        result = call(client)
    print_answer(as_json, result, show_human)


def read_secret(env_name: str, prompt: str) -> str:
    """From ``env_name``, a hidden prompt (asked twice) on a terminal, or the first line of piped stdin."""
    from_env = os.environ.get(env_name)
    if from_env:
        return from_env
    if sys.stdin.isatty():
        secret: str = click.prompt(prompt, hide_input=True, confirmation_prompt=True)
        return secret
    secret = sys.stdin.readline().rstrip("\n")
    if not secret:
        fail(f"no {prompt.lower()} given (set {env_name} or pipe it on stdin)", ExitCode.USAGE)
    return secret


# -- users -----------------------------------------------------------------------------------------


@click.group()
def user() -> None:
    """Manage user accounts (admin)."""


def find_user_id(client: AdminClient, reference: str) -> UUID:
    """A user id from an id or a handle (looked up page by page)."""
    try:
        return UUID(reference)
    except ValueError:
        pass
    cursor: str | None = None
    while True:
        page = client.list_users(limit=200, cursor=cursor)
        for listed in page.users:
            if listed.handle == reference:
                return listed.id
        if page.next_cursor is None:
            fail(f"no user with handle {reference!r}", ExitCode.NOT_FOUND)
        cursor = page.next_cursor


def show_user_line(listed: UserResponse) -> None:
    role = "admin" if listed.is_admin else "user"
    state = "active" if listed.is_active else "disabled"
    click.echo(f"{listed.handle:<24} {role:<6} {state:<9} {listed.id}")


@user.command("create")
@click.argument("handle")
@click.option("--email", help="The user's email address.")
@click.option("--admin", "is_admin", is_flag=True, help="Make the user an admin.")
@operator_command
def create_user(handle: str, email: str | None, is_admin: bool, as_json: bool) -> None:
    """Create user HANDLE (password from CYNODE_NEW_PASSWORD, a prompt or stdin)."""
    password = read_secret(NEW_PASSWORD_ENV, "New password")
    request = CreateUserRequest(handle=handle, password=password, email=email, is_admin=is_admin)
    answer(as_json, lambda client: client.create_user(request), show_user_line)


@user.command("list")
@click.option("--limit", type=click.IntRange(1, 200), help="At most this many users (default: all).")
@operator_command
def list_users(limit: int | None, as_json: bool) -> None:
    """List users by handle."""

    def every_page(client: AdminClient) -> list[UserResponse]:
        listed: list[UserResponse] = []
        cursor: str | None = None
        while True:
            page = client.list_users(limit=limit or 200, cursor=cursor)
            listed.extend(page.users)
            if limit is not None or page.next_cursor is None:
                return listed
            cursor = page.next_cursor

    def show(listed: list[UserResponse]) -> None:
        for entry in listed:
            show_user_line(entry)

    answer(as_json, lambda client: {"users": every_page(client)}, lambda page: show(page["users"]))


def user_state_command(name: str, active: bool) -> click.Command:
    @user.command(name)
    @click.argument("reference", metavar="HANDLE|ID")
    @operator_command
    def change(reference: str, as_json: bool) -> None:
        answer(as_json, lambda client: client.set_user_active(find_user_id(client, reference), active), show_user_line)

    change.help = f"{name.capitalize()} a user (sign-in {'allowed' if active else 'refused, sessions end'})."
    return change


user_state_command("disable", active=False)
user_state_command("enable", active=True)


@user.command("reset-password")
@click.argument("reference", metavar="HANDLE|ID")
@operator_command
def reset_password(reference: str, as_json: bool) -> None:
    """Set a user's password (from CYNODE_NEW_PASSWORD, a prompt or stdin); their sessions end."""
    password = read_secret(NEW_PASSWORD_ENV, "New password")

    def reset(client: AdminClient) -> dict[str, Any]:
        user_id = find_user_id(client, reference)
        client.reset_password(user_id, password)
        return {"user_id": str(user_id), "password_reset": True}

    answer(as_json, reset, lambda done: click.echo(f"password reset for {reference}"))


# -- nodes -----------------------------------------------------------------------------------------


@click.group()
def node() -> None:
    """Inspect worker nodes and take them in and out of service (admin)."""


def show_node_row(listed: NodeResponse) -> None:
    models = ",".join(listed.capability.models) if listed.capability else ""
    seen = listed.last_heartbeat.strftime("%Y-%m-%d %H:%M:%S") if listed.last_heartbeat else "never"
    ack = listed.config_ack_status or "-"
    click.echo(
        f"{listed.node_slug:<20} {listed.admin_state:<9} {'yes' if listed.dispatchable else 'no':<12} "
        f"{listed.running_jobs:<7} {seen:<19} {ack:<7} {models}"
    )


@node.command("list")
@operator_command
def list_nodes(as_json: bool) -> None:
    """List nodes: admin state, whether they get work, running jobs, last heartbeat, config ack, models."""

    def show(listed: Any) -> None:
        click.echo(f"{'NODE':<20} {'STATE':<9} {'DISPATCHABLE':<12} {'RUNNING':<7} {'LAST HEARTBEAT':<19} "
                   f"{'CONFIG':<7} MODELS")  # fmt: skip
        for entry in listed.nodes:
            show_node_row(entry)

    answer(as_json, AdminClient.list_nodes, show)


def show_node(found: NodeResponse) -> None:
    fields: dict[str, Any] = {
        "node": found.node_slug,
        "id": found.node_id,
        "status": found.status,
        "admin state": found.admin_state,
        "dispatchable": "yes" if found.dispatchable else "no",
        "running jobs": found.running_jobs,
        "worker api": found.worker_api_url or "-",
        "last heartbeat": found.last_heartbeat.isoformat() if found.last_heartbeat else "never",
        "config": f"{found.config_version or '-'} (ack {found.config_ack_status or '-'} "
        f"{found.config_ack_version or ''})".replace(" )", ")"),
    }
    if found.config_ack_error:
        fields["config error"] = found.config_ack_error
    if found.capability is not None:
        cap = found.capability
        fields["capacity"] = (
            f"{cap.cpu_cores} cpu, {cap.ram_mb} MB ram, {cap.gpu_count} gpu ({cap.vram_mb} MB vram), "
            f"{cap.sandbox_max_concurrency} sandbox slots"
        )
        fields["inference"] = f"{'running' if cap.inference_running else 'not running'}: {', '.join(cap.models) or '-'}"
    for name, value in fields.items():
        click.echo(f"{name + ':':<16}{value}")


node_argument = click.argument("node_ref", metavar="NODE")


@node.command("get")
@node_argument
@operator_command
def get_node(node_ref: str, as_json: bool) -> None:
    """Show one node (by slug or id)."""
    answer(as_json, lambda client: client.get_node(node_ref), show_node)


def show_change(action: str) -> Callable[[AdminStateChange], None]:
    def show(change: AdminStateChange) -> None:
        found = change.node
        state = found.admin_state if change.changed else f"already {found.admin_state}"
        running = (
            f"; {found.running_jobs} running job(s) will finish" if found.running_jobs and action != "enable" else ""
        )
        click.echo(f"node {found.node_slug}: {state}{running}")

    return show


NODE_ACTION_HELP = {
    "drain": "Stop sending NODE new jobs; the jobs running there finish.",
    "disable": "Take NODE out of service: no new jobs (running ones finish).",
    "enable": "Put NODE back into service.",
}


def node_action_command(action: str) -> click.Command:
    @node.command(action, help=NODE_ACTION_HELP[action])
    @node_argument
    @operator_command
    def change(node_ref: str, as_json: bool) -> None:
        answer(as_json, lambda client: client.change_node(node_ref, action), show_change(action))

    return change


for node_action in NODE_ACTION_HELP:
    node_action_command(node_action)


# -- settings --------------------------------------------------------------------------------------


@click.group()
def settings() -> None:
    """Read and write system settings (admin), e.g. the Project Manager model choice."""


def show_setting(setting: SettingResponse) -> None:
    value = json.dumps(setting.value) if setting.is_set else f"{json.dumps(setting.default)} (default)"
    click.echo(f"{setting.key}={value}")


@settings.command("get")
@click.argument("key", required=False)
@operator_command
def get_setting(key: str | None, as_json: bool) -> None:
    """Show KEY, or every known setting with its value, default and allowed values."""
    if key is not None:
        answer(as_json, lambda client: client.get_setting(key), show_setting)
        return

    def show_all(listed: Any) -> None:
        for setting in listed.settings:
            show_setting(setting)
            allowed = f" (one of {', '.join(setting.allowed)})" if setting.allowed else ""
            click.echo(f"    {setting.description}{allowed}")

    answer(as_json, AdminClient.list_settings, show_all)


def parse_value(text: str) -> Any:
    """A JSON value (``true``, ``3``, ``null``, ``"x"``); anything that is not JSON is taken as a string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


@settings.command("set")
@click.argument("key")
@click.argument("value")
@operator_command
def set_setting(key: str, value: str, as_json: bool) -> None:
    """Set KEY to VALUE (JSON, or a bare string); VALUE null restores the default."""
    answer(as_json, lambda client: client.set_setting(key, parse_value(value)), show_setting)


# -- credentials -----------------------------------------------------------------------------------


@click.group()
def credentials() -> None:
    """External provider credentials (admin); secrets go in and never come back out."""


def show_credential(credential: CredentialResponse) -> None:
    state = "active" if credential.active else "disabled"
    click.echo(f"{credential.credential_id}  {credential.provider:<12} {credential.name:<16} "
               f"{credential.credential_type:<8} {state}")  # fmt: skip


@credentials.command("add")
@click.option("--provider", required=True, help="Provider name, e.g. openai.")
@click.option("--name", required=True, help="A name for this credential, unique per provider.")
@click.option("--type", "credential_type", default="api_key", show_default=True)
@operator_command
def add_credential(provider: str, name: str, credential_type: str, as_json: bool) -> None:
    """Store a provider secret (from CYNODE_CREDENTIAL_SECRET, a prompt or stdin), encrypted."""
    secret = read_secret(CREDENTIAL_SECRET_ENV, "Secret")
    request = AddCredentialRequest(provider=provider, name=name, secret=secret, credential_type=credential_type)
    answer(as_json, lambda client: client.add_credential(request), show_credential)


@credentials.command("list")
@operator_command
def list_credentials(as_json: bool) -> None:
    """List credentials (never their secrets)."""

    def show(listed: Any) -> None:
        for credential in listed.credentials:
            show_credential(credential)

    answer(as_json, AdminClient.list_credentials, show)


credential_argument = click.argument("credential_id", type=click.UUID, metavar="ID")


@credentials.command("rotate")
@credential_argument
@operator_command
def rotate_credential(credential_id: UUID, as_json: bool) -> None:
    """Replace a credential's secret (from CYNODE_CREDENTIAL_SECRET, a prompt or stdin)."""
    secret = read_secret(CREDENTIAL_SECRET_ENV, "Secret")
    answer(as_json, lambda client: client.rotate_credential(credential_id, secret), show_credential)


@credentials.command("disable")
@credential_argument
@operator_command
def disable_credential(credential_id: UUID, as_json: bool) -> None:
    """Disable a credential."""
    answer(as_json, lambda client: client.disable_credential(credential_id), show_credential)


admin_commands: list[click.Command] = [user, node, settings, credentials]
