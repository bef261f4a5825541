"""``agentrun quotas`` and ``agentrun limits``: a user's daily quotas and an agent's usage
limits, as ``PUT /api/users/{id}/quotas/`` and ``PUT /api/agents/{id}/limits/`` set them,
through the same services."""

import argparse
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import service as auth
from app.cli.session import CommandError, run_in_session
from app.core.config import Settings
from app.core.errors import field_errors
from app.executions import quotas

if TYPE_CHECKING:
    from app.budgets.limits import Limits

# The API's body model a command's options are validated by.
Body = TypeVar("Body", bound=BaseModel)


def _table(rows: Sequence[tuple[str, str]]) -> str:
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def _shown(value: object) -> str:
    return "none" if value is None else str(value)


def _validated(model: type[Body], values: dict[str, object]) -> Body:
    """The command's options as the API's body model takes them, or its messages by field."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = field_errors(exc.errors())
        explained = "; ".join(f"{name}: {message}" for name, message in problems.items())
        raise CommandError(explained) from None


def _quotas_table(username: str, shown: quotas.QuotasOut) -> str:
    return f"Daily quotas of {username!r} (UTC days):\n" + _table(
        [
            ("max_executions_per_day", _shown(shown.max_executions_per_day)),
            ("max_tokens_per_day", _shown(shown.max_tokens_per_day)),
            ("executions today", str(shown.used_today.executions)),
            ("tokens today", str(shown.used_today.tokens)),
            ("resets at", shown.resets_at.strftime("%Y-%m-%d %H:%M UTC")),
        ]
    )


def show_quotas(args: argparse.Namespace, settings: Settings) -> None:
    async def work(session: AsyncSession) -> str:
        user = await auth.get_user_by_username(session, args.username)
        return _quotas_table(user.username, await quotas.quotas_of(session, user))

    print(run_in_session(settings, work))


def set_quotas(args: argparse.Namespace, settings: Settings) -> None:
    # As PUT /api/users/{id}/quotas/: a quota left out is lifted.
    wanted = _validated(
        quotas.QuotasIn,
        {
            "max_executions_per_day": args.executions_per_day,
            "max_tokens_per_day": args.tokens_per_day,
        },
    )

    async def work(session: AsyncSession) -> str:
        user = await auth.get_user_by_username(session, args.username)
        return _quotas_table(user.username, await quotas.set_quotas(session, user, wanted))

    print(run_in_session(settings, work))


def _limits_table(agent_id: int, name: str, limits: "Limits") -> str:
    return f"Usage limits of agent {agent_id} ({name!r}), for each execution:\n" + _table(
        [
            ("max_model_requests", _shown(limits.max_model_requests)),
            ("max_total_tokens", _shown(limits.max_total_tokens)),
            ("max_cost", _shown(limits.max_cost)),
        ]
    )


def show_limits(args: argparse.Namespace, settings: Settings) -> None:
    # Imported here: limits load pydantic-ai, which the other commands do without.
    from app.agents import service as agents
    from app.budgets.limits import stored_limits

    async def work(session: AsyncSession) -> str:
        agent = await agents.get_live_agent(session, args.agent_id)
        return _limits_table(agent.id, agent.name, stored_limits(agent.limits))

    print(run_in_session(settings, work))


def set_limits(args: argparse.Namespace, settings: Settings) -> None:
    from app.agents import service as agents
    from app.budgets.limits import Limits, stored_limits

    # As PUT /api/agents/{id}/limits/: a limit left out is lifted.
    wanted = _validated(
        Limits,
        {
            "max_model_requests": args.max_model_requests,
            "max_total_tokens": args.max_total_tokens,
            "max_cost": args.max_cost,
        },
    )

    async def work(session: AsyncSession) -> str:
        agent = await agents.set_agent_limits(session, args.agent_id, wanted)
        return _limits_table(agent.id, agent.name, stored_limits(agent.limits))

    print(run_in_session(settings, work))


def add_budget_commands(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """``quotas`` and ``limits``: what PUT /api/users/{id}/quotas/ and
    PUT /api/agents/{id}/limits/ set, through the same services."""
    user_quotas = commands.add_parser(
        "quotas", help="a user's daily quotas (executions, tokens)"
    ).add_subparsers(dest="quotas_command", required=True, metavar="ACTION")
    show = user_quotas.add_parser("show", help="a user's quotas and what he used today")
    show.add_argument("username")
    show.set_defaults(handler=show_quotas)
    change = user_quotas.add_parser(
        "set", help="set a user's quotas, from his next submit; a quota left out is lifted"
    )
    change.add_argument("username")
    change.add_argument("--executions-per-day", type=int, metavar="N")
    change.add_argument("--tokens-per-day", type=int, metavar="N")
    change.set_defaults(handler=set_quotas)

    agent_limits = commands.add_parser(
        "limits", help="an agent's usage limits for each of its executions"
    ).add_subparsers(dest="limits_command", required=True, metavar="ACTION")
    show = agent_limits.add_parser("show", help="an agent's usage limits")
    show.add_argument("agent_id", type=int, metavar="AGENT_ID")
    show.set_defaults(handler=show_limits)
    change = agent_limits.add_parser(
        "set", help="set an agent's limits, for runs starting from now; a limit left out is lifted"
    )
    change.add_argument("agent_id", type=int, metavar="AGENT_ID")
    change.add_argument("--max-model-requests", type=int, metavar="N")
    change.add_argument("--max-total-tokens", type=int, metavar="N")
    change.add_argument("--max-cost", type=float, metavar="USD")
    change.set_defaults(handler=set_limits)
