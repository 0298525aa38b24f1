"""Accounts and their role grants: ``geogrid user add|list|grant|revoke``.
"""
from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

from geogrid.access import accounts
from geogrid.cli.common import in_transaction

app = typer.Typer(help="Accounts and their role grants.", no_args_is_help=True)




@app.command("add")
def user_add(
    username: str,
    password: Annotated[Optional[str], typer.Option(help="Default: read from stdin, or prompt")] = None,
    display_name: Annotated[Optional[str], typer.Option()] = None,
) -> None:
    """Create an account (then grant it roles)."""


    if password is None:
        password = sys.stdin.readline().strip() if not sys.stdin.isatty() else typer.prompt(
            "password", hide_input=True, confirmation_prompt=True)
    in_transaction(lambda s: accounts.create_account(s, username, password, display_name))
    typer.echo(f"account {username} created")


@app.command("list")
def user_list() -> None:
    """Accounts and their grants."""


    for account in in_transaction(accounts.list_accounts):
        grants = ", ".join(f"{g['role']}@{g['area'] or '*'}" + (f"[{g['department']}]" if g["department"] else "")
                           for g in account["grants"]) or "no roles"
        typer.echo(f"{account['username']:<20} {'active' if account['active'] else 'disabled':<9} {grants}")


@app.command("grant")
def user_grant(
    username: str,
    role: Annotated[str, typer.Argument(help="admin, planner, inspector, grid_worker, department_handler")],
    area: Annotated[Optional[str], typer.Option(help="Area code: the grant holds for its subtree")] = None,
    department: Annotated[Optional[str], typer.Option(help="For department handlers")] = None,
) -> None:
    """Grant a role on an area's subtree (no area: everywhere)."""


    in_transaction(lambda s: accounts.grant(s, username, role, area, department))
    typer.echo(f"{username}: {role} on {area or 'everything'}")


@app.command("revoke")
def user_revoke(username: str, role: str, area: Annotated[Optional[str], typer.Option()] = None) -> None:
    """Take a role away (on one area, or everywhere it was granted)."""


    n = in_transaction(lambda s: accounts.revoke(s, username, role, area))
    typer.echo(f"{username}: {n} grant(s) of {role} revoked")
