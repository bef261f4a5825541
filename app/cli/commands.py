"""The ``agentrun`` command: migrate the database, manage users and tokens (their quotas and
agents' limits: app/cli/budgets.py), run the services."""

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

import app
from app.auth import service as auth
from app.cli.batches import add_batch_commands
from app.cli.budgets import add_budget_commands
from app.cli.keys import add_key_commands
from app.cli.remote import add_remote_commands, run_remote
from app.cli.schedules import add_schedule_commands
from app.cli.session import CommandError, run_in_session
from app.core.config import Settings, get_settings
from app.executions.revocation import revoke_user_work

# Who the cancellations of a revocation at the command line name ("Cancelled by an operator.").
OPERATOR = "an operator"
ALEMBIC_INI = Path(app.__file__).resolve().parent.parent / "alembic.ini"


def migrate(args: argparse.Namespace, settings: Settings) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(ALEMBIC_INI))
    # ConfigParser treats % as interpolation; a password may contain one.
    config.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    command.upgrade(config, "head")


def create_user(args: argparse.Namespace, settings: Settings) -> None:
    username = args.username.strip()

    async def work(session: AsyncSession) -> str:
        user = await auth.create_user(session, username, is_admin=args.admin)
        return await auth.create_token(session, user, args.token_name)

    token = run_in_session(settings, work)
    role = "admin" if args.admin else "user"
    print(f"Created {role} {username!r}. Its API token (shown only now):", file=sys.stderr)
    print(token)


def set_user_active(args: argparse.Namespace, settings: Settings) -> None:
    is_active = args.users_command == "enable"

    async def work(session: AsyncSession) -> str:
        user = await auth.get_user_by_username(session, args.username)
        await auth.set_user_active(session, user, is_active=is_active)
        if is_active:
            return f"User {user.username!r} enabled: his tokens not revoked work again."
        # No queue here: a running execution's worker finds the request on its next heartbeat.
        revoked = await revoke_user_work(
            session, user, by=OPERATOR, cancel_running=args.cancel_running
        )
        stopping = f", {len(revoked.stopping)} running asked to stop" if args.cancel_running else ""
        return (
            f"User {user.username!r} disabled: requests with his tokens get 401 at once; "
            f"{len(revoked.cancelled)} executions not started cancelled{stopping}."
        )

    print(run_in_session(settings, work))


def set_weight(args: argparse.Namespace, settings: Settings) -> None:
    async def work(session: AsyncSession) -> str:
        user = await auth.get_user_by_username(session, args.username)
        await auth.set_fair_share_weight(session, user, args.weight)
        return f"User {user.username!r} now has weight {args.weight:g} in the fair share."

    print(run_in_session(settings, work))


def _weight(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1000:
        raise argparse.ArgumentTypeError("a weight is above 0 and at most 1000")
    return value


def create_token(args: argparse.Namespace, settings: Settings) -> None:
    async def work(session: AsyncSession) -> str:
        user = await auth.get_user_by_username(session, args.username)
        return await auth.create_token(session, user, args.name)

    token = run_in_session(settings, work)
    print(f"New token {args.name!r} for {args.username!r} (shown only now):", file=sys.stderr)
    print(token)


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if value else "-"


def list_tokens(args: argparse.Namespace, settings: Settings) -> None:
    async def work(session: AsyncSession) -> str:
        user = await auth.get_user_by_username(session, args.username)
        rows = [("ID", "PREFIX", "NAME", "CREATED (UTC)", "LAST USED", "REVOKED")]
        for token in await auth.list_tokens(session, user):
            rows.append(
                (
                    str(token.id),
                    token.prefix,
                    token.name,
                    _when(token.created_at),
                    _when(token.last_used_at),
                    _when(token.revoked_at),
                )
            )
        widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows
        )

    print(run_in_session(settings, work))


def revoke_token(args: argparse.Namespace, settings: Settings) -> None:
    async def work(session: AsyncSession) -> str:
        token = await auth.find_token(session, args.token)
        described = f"Token {token.id} ({token.prefix}, {token.name!r}) of {token.user.username!r}"
        if token.revoked_at is not None:
            return f"{described} was already revoked."
        await auth.revoke_token(session, token)
        return f"{described} revoked."

    print(run_in_session(settings, work))


def serve(args: argparse.Namespace, settings: Settings) -> None:
    import uvicorn

    # X-Forwarded-* are the app's business (AGENTRUN_TRUSTED_PROXIES), not uvicorn's.
    uvicorn.run(
        "app.main:app",
        host=args.host,
        port=args.port,
        log_level=settings.log_level.lower(),
        proxy_headers=False,
    )


def dev(args: argparse.Namespace, settings: Settings) -> None:
    from app.cli.dev_stack import run_dev_stack

    try:
        asyncio.run(run_dev_stack(args.host, args.port))
    except KeyboardInterrupt:
        # Ctrl-C while still starting (migrating, seeding): nothing to report but that.
        print("agentrun dev stopped while starting.", file=sys.stderr)
        sys.exit(130)


def worker(args: argparse.Namespace, settings: Settings) -> None:
    # Imported here so that the other commands do not load the agent machinery.
    from workers.process.startup import run_worker

    run_worker(settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agentrun",
        description="agentrun: agentic executions as a service. Settings come from AGENTRUN_* "
        "environment variables and a .env file.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser(
        "migrate", help="upgrade the database schema to the latest revision"
    ).set_defaults(handler=migrate)

    users = commands.add_parser("users", help="manage users").add_subparsers(
        dest="users_command", required=True, metavar="ACTION"
    )
    create = users.add_parser(
        "create", help="create a user and a token; prints the token on the last line"
    )
    create.add_argument("username")
    create.add_argument("--admin", action="store_true", help="may manage datasets and agents")
    create.add_argument("--token-name", default="default", help="name of the first token")
    create.set_defaults(handler=create_user)
    disable = users.add_parser(
        "disable", help="disable a user: requests with any of his tokens get 401 at once"
    )
    disable.add_argument("username")
    disable.add_argument(
        "--cancel-running",
        action="store_true",
        help="also cancel his running executions (by default they finish; those not started "
        "are cancelled)",
    )
    disable.set_defaults(handler=set_user_active)
    enable = users.add_parser("enable", help="enable a disabled user again")
    enable.add_argument("username")
    enable.set_defaults(handler=set_user_active)
    weight = users.add_parser(
        "weight",
        help="set a user's weight in the fair share of the fleet (default 1; docs/fair-share.md)",
    )
    weight.add_argument("username")
    weight.add_argument("weight", type=_weight, help="above 0, at most 1000")
    weight.set_defaults(handler=set_weight)

    tokens = commands.add_parser("tokens", help="manage API tokens").add_subparsers(
        dest="tokens_command", required=True, metavar="ACTION"
    )
    new_token = tokens.add_parser(
        "create", help="create a token for an existing user; prints it on the last line"
    )
    new_token.add_argument("username")
    new_token.add_argument("--name", default="default", help="a label to tell tokens apart")
    new_token.set_defaults(handler=create_token)
    token_list = tokens.add_parser("list", help="list a user's tokens (never their keys)")
    token_list.add_argument("username")
    token_list.set_defaults(handler=list_tokens)
    revoke = tokens.add_parser("revoke", help="revoke a token: requests with it get 401 at once")
    revoke.add_argument(
        "token", metavar="PREFIX_OR_ID", help="the id or prefix `tokens list` shows"
    )
    revoke.set_defaults(handler=revoke_token)

    add_budget_commands(commands)
    add_key_commands(commands)

    serve_parser = commands.add_parser("serve", help="run the HTTP API (uvicorn)")
    serve_parser.add_argument("--host", default="127.0.0.1")
    serve_parser.add_argument("--port", type=int, default=8000)
    serve_parser.set_defaults(handler=serve)

    commands.add_parser("worker", help="run the execution worker (arq)").set_defaults(
        handler=worker
    )

    dev_parser = commands.add_parser(
        "dev", help="API and worker in one process, with local or embedded services and demo data"
    )
    dev_parser.add_argument("--host", default="127.0.0.1")
    dev_parser.add_argument("--port", type=int, default=8000)
    dev_parser.set_defaults(handler=dev)

    add_remote_commands(commands)
    add_batch_commands(commands)
    add_schedule_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if hasattr(args, "remote"):
        # The API's client side needs no settings or database, only a URL and a token.
        run_remote(args)
        return
    handler: Callable[[argparse.Namespace, Settings], None] = args.handler
    try:
        handler(args, get_settings())
    except CommandError as exc:
        print(f"agentrun: error: {exc}", file=sys.stderr)
        sys.exit(1)
