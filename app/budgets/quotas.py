"""Per-user daily quotas (executions, tokens), set by an admin and counted per UTC day over the
user's executions: a start (or retry) past one is refused with 429, saying which quota and when
it resets, with ``Retry-After``."""

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import User
from app.budgets import repository
from app.core.db import utcnow
from app.core.errors import DomainError

EXECUTIONS_PER_DAY = "max_executions_per_day"
TOKENS_PER_DAY = "max_tokens_per_day"


class QuotaExceeded(DomainError):
    status_code = 429
    description = "A daily quota of the user is used up (named in the body, with its reset)."


class QuotasIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    max_executions_per_day: int | None = Field(
        default=None,
        gt=0,
        le=2**31 - 1,
        description="Executions started per UTC day; null: no quota.",
    )
    max_tokens_per_day: int | None = Field(
        default=None,
        gt=0,
        le=2**63 - 1,
        description="Input plus output tokens of the executions started per UTC day; null: "
        "no quota.",
    )


class UsedToday(BaseModel):
    executions: int = Field(description="Executions started today (UTC).")
    tokens: int = Field(description="Tokens used by them (a running one counts once it ends).")


class QuotasOut(QuotasIn):
    used_today: UsedToday
    resets_at: datetime = Field(description="The next UTC midnight, when the counts restart.")


def day_of(now: datetime) -> tuple[datetime, datetime]:
    """The UTC day ``now`` is in: its start, and the next day's."""
    start = datetime.combine(now.astimezone(UTC).date(), time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


@dataclass(frozen=True)
class Today:
    used: repository.Used
    resets_at: datetime


async def used_today(session: AsyncSession, user_id: int) -> Today:
    start, resets_at = day_of(utcnow())
    return Today(await repository.used_since(session, user_id, start), resets_at)


def _refusal(
    quota: str, limit: int, used: int, what: str, resets_at: datetime, asked: str = ""
) -> QuotaExceeded:
    retry_after = max(1, int((resets_at - utcnow()).total_seconds()) + 1)
    return QuotaExceeded(
        {
            "detail": f"Daily quota {quota} reached: {used} {what} of {limit} today (UTC)"
            f"{asked}. It resets at {resets_at.isoformat().replace('+00:00', 'Z')}.",
            "quota": quota,
            "limit": limit,
            "used": used,
            "resets_at": resets_at.isoformat().replace("+00:00", "Z"),
        },
        headers={"Retry-After": str(retry_after)},
    )


async def check_quotas(session: AsyncSession, user: User, new_executions: int = 1) -> None:
    """Refuse (429) ``new_executions`` new executions of ``user`` (a batch's items: all or
    none) past one of his daily quotas. A user without quotas costs nothing; one with quotas
    has his row locked until the request's transaction ends, so that concurrent submits are
    counted one after the other."""
    max_executions = user.max_executions_per_day
    max_tokens = user.max_tokens_per_day
    if max_executions is None and max_tokens is None:
        return
    await repository.lock_user(session, user.id)
    today = await used_today(session, user.id)
    used = today.used
    if max_executions is not None and used.executions + new_executions > max_executions:
        asked = "" if new_executions == 1 else f", and {new_executions} more asked"
        raise _refusal(
            EXECUTIONS_PER_DAY,
            max_executions,
            used.executions,
            "executions",
            today.resets_at,
            asked,
        )
    if max_tokens is not None and used.tokens >= max_tokens:
        raise _refusal(TOKENS_PER_DAY, max_tokens, used.tokens, "tokens", today.resets_at)


async def quotas_of(session: AsyncSession, user: User) -> QuotasOut:
    today = await used_today(session, user.id)
    return QuotasOut(
        max_executions_per_day=user.max_executions_per_day,
        max_tokens_per_day=user.max_tokens_per_day,
        used_today=UsedToday(executions=today.used.executions, tokens=today.used.tokens),
        resets_at=today.resets_at,
    )


async def set_quotas(session: AsyncSession, user: User, quotas: QuotasIn) -> QuotasOut:
    """Set (or, with nulls, lift) ``user``'s daily quotas; they apply from his next submit."""
    user.max_executions_per_day = quotas.max_executions_per_day
    user.max_tokens_per_day = quotas.max_tokens_per_day
    await session.flush()
    return await quotas_of(session, user)
