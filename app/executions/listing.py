"""The list of executions: visibility, filters, the count, and one page, newest first.

Two choices keep a page fast at millions of rows:

- the page's ids are chosen from an index alone (ORDER BY started_at, id with OFFSET), and
  only those 25 rows are read, so a deep page does not read every row it skips;
- the count is exact up to ``EXACT_COUNT_LIMIT``; past it, it is PostgreSQL's planner estimate
  for the same query, so no page costs a scan of every matching row. Whether a page exists, or
  has a next one, is decided by its rows, never by the count.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Select, func, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import User
from app.executions.models import AgenticExecution, ExecutionStatus

EXACT_COUNT_LIMIT = 10_000

NEWEST_FIRST = (AgenticExecution.started_at.desc(), AgenticExecution.id.desc())


@dataclass(frozen=True)
class ExecutionFilters:
    agent_id: int | None = None
    status: ExecutionStatus | None = None
    dataset_id: int | None = None


def _visible_ids(user: User, filters: ExecutionFilters) -> Select[int]:
    query = select(AgenticExecution.id)
    if not user.is_admin:
        query = query.where(AgenticExecution.user_id == user.id)
    if filters.agent_id is not None:
        query = query.where(AgenticExecution.agent_id == filters.agent_id)
    if filters.status is not None:
        query = query.where(AgenticExecution.status == filters.status.value)
    if filters.dataset_id is not None:
        query = query.where(AgenticExecution.dataset_id == filters.dataset_id)
    return query


async def _planner_estimate(session: AsyncSession, query: Select[int]) -> int:
    compiled = query.compile(
        dialect=postgresql.dialect(),  # type: ignore[no-untyped-call]
        compile_kwargs={"literal_binds": True},
    )
    plan = await session.scalar(text(f"EXPLAIN (FORMAT JSON) {compiled}"))
    document = json.loads(plan) if isinstance(plan, str) else plan
    return int(document[0]["Plan"]["Plan Rows"])


async def count_executions(session: AsyncSession, user: User, filters: ExecutionFilters) -> int:
    """Exact up to EXACT_COUNT_LIMIT, the planner's estimate (never less) beyond it."""
    query = _visible_ids(user, filters)
    capped = query.limit(EXACT_COUNT_LIMIT + 1).subquery()
    exact = await session.scalar(select(func.count()).select_from(capped)) or 0
    if exact <= EXACT_COUNT_LIMIT:
        return exact
    return max(exact, await _planner_estimate(session, query))


@dataclass(frozen=True)
class Page:
    executions: Sequence[AgenticExecution]
    has_next: bool


async def list_executions(
    session: AsyncSession, user: User, filters: ExecutionFilters, *, offset: int, limit: int
) -> Page:
    """Newest first: by started_at, then id, both descending. One row more than asked tells
    whether a next page exists, whatever the (possibly estimated) count says."""
    page_ids = (
        _visible_ids(user, filters)
        .order_by(*NEWEST_FIRST)
        .offset(offset)
        .limit(limit + 1)
        .subquery()
    )
    query = (
        select(AgenticExecution)
        .join(page_ids, page_ids.c.id == AgenticExecution.id)
        .order_by(*NEWEST_FIRST)
    )
    rows = (await session.scalars(query)).all()
    return Page(executions=rows[:limit], has_next=len(rows) > limit)
