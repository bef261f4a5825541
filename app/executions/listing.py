"""Reading the list of executions a page at a time (visibility, filters, the count).

Three choices keep a page fast at millions of rows:

- the page's ids are chosen from an index alone (ORDER BY started_at, id with OFFSET), and
  only those rows are read, so a deep page does not read every row it skips;
- the count is exact up to ``EXACT_COUNT_LIMIT`` and on the last page; past it, it is
  PostgreSQL's planner estimate for the same query, so no page costs a scan of every matching
  row. A page that reaches past ``EXACT_COUNT_LIMIT`` rows decides the capped count by itself
  (it is the last page, or more rows are visible), so deep pages skip the count's scan.
  Whether a page exists, or has a next one, is decided by its rows, never by the count;
- the page, its count and each execution's files are one statement: one round trip.
"""

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    Text,
    bindparam,
    case,
    cast,
    func,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.selectable import LateralFromClause
from sqlalchemy.sql.visitors import InternalTraversal

from app.auth.models import User
from app.executions.models import AgenticExecution, ExecutionStatus
from app.executions.repository import EXECUTION_COLUMNS
from app.executions.rows import ExecutionRow

EXACT_COUNT_LIMIT = 10_000

_executions = AgenticExecution.__table__
NEWEST_FIRST = (_executions.c.started_at.desc(), _executions.c.id.desc())


@dataclass(frozen=True)
class ExecutionFilters:
    agent_id: int | None = None
    status: ExecutionStatus | None = None
    dataset_id: int | None = None
    batch_id: int | None = None
    schedule_id: int | None = None


def visible_ids(
    *,
    admin: bool,
    agent: bool,
    status: bool,
    dataset: bool,
    batch: bool = False,
    schedule: bool = False,
) -> Select[Any]:
    """The ids a user may see, filtered; the values are bound parameters of the same names."""
    query = select(_executions.c.id)
    if not admin:
        # visible_to() for a user known not to be an admin: the condition its index serves.
        query = query.where(_executions.c.user_id == bindparam("user_id", type_=Integer))
    if agent:
        query = query.where(_executions.c.agent_id == bindparam("agent_id", type_=Integer))
    if status:
        query = query.where(_executions.c.status == bindparam("status", type_=String))
    if dataset:
        query = query.where(_executions.c.dataset_id == bindparam("dataset_id", type_=Integer))
    if batch:
        # A batch's items (at most max_batch_items) from its index, then sorted.
        query = query.where(_executions.c.batch_id == bindparam("batch_id", type_=Integer))
    if schedule:
        # A schedule's executions, newest first from their index.
        query = query.where(_executions.c.schedule_id == bindparam("schedule_id", type_=Integer))
    return query


def _shape(user: User, filters: ExecutionFilters) -> dict[str, bool]:
    # One statement per combination of filters, not one with "x IS NULL OR" conditions: each
    # combination has its own index, which a generic plan would not pick.
    return {
        "admin": user.is_admin,
        "agent": filters.agent_id is not None,
        "status": filters.status is not None,
        "dataset": filters.dataset_id is not None,
        "batch": filters.batch_id is not None,
        "schedule": filters.schedule_id is not None,
    }


def _values(user: User, filters: ExecutionFilters) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if not user.is_admin:
        values["user_id"] = user.id
    if filters.agent_id is not None:
        values["agent_id"] = filters.agent_id
    if filters.status is not None:
        values["status"] = filters.status.value
    if filters.dataset_id is not None:
        values["dataset_id"] = filters.dataset_id
    if filters.batch_id is not None:
        values["batch_id"] = filters.batch_id
    if filters.schedule_id is not None:
        values["schedule_id"] = filters.schedule_id
    return values


# Shown whole by an execution's own page; in a list, only up to ``max_field_bytes``.
BOUNDED_FIELDS = ("input", "result")


def _over(column: ColumnElement[Any], limit: ColumnElement[Any]) -> ColumnElement[bool]:
    """Whether the JSON text of ``column`` is longer than ``limit`` bytes. Writing a value as
    text costs ~16 ms a MB in PostgreSQL: a value whose stored (possibly compressed) form is
    over the limit is over it without being written (its text is never shorter)."""
    return case(
        (func.pg_column_size(column) > limit, true()),
        else_=func.coalesce(func.octet_length(cast(column, Text)), 0) > limit,
    )


def _bounded_fields() -> tuple[LateralFromClause, list[ColumnElement[Any]]]:
    """A lateral subquery telling, for each execution, whether its ``input`` and ``result``
    are over the parameter ``max_field_bytes``, and those columns as a list shows them: NULL
    when over, so that the value is neither sent by PostgreSQL nor decoded here (the router
    shows a marker instead; ``input_truncated``/``result_truncated`` say where)."""
    limit = bindparam("max_field_bytes", type_=Integer)
    measured = [
        _over(_executions.c[name], limit).label(f"{name}_truncated") for name in BOUNDED_FIELDS
    ]
    flags = (
        select(*measured)
        .correlate(_executions)
        # Keeps the subquery from being merged into the page's, which would compute each
        # flag twice (for the flag, and for the column).
        .offset(0)
        .lateral("bounded")
    )
    columns: list[ColumnElement[Any]] = []
    for column in EXECUTION_COLUMNS:
        if column.name in BOUNDED_FIELDS:
            over = flags.c[f"{column.name}_truncated"]
            columns.append(case((over, None), else_=column).label(column.name))
            columns.append(over)
        else:
            columns.append(column)
    return flags, columns


def page_query(
    *,
    admin: bool,
    agent: bool,
    status: bool,
    dataset: bool,
    batch: bool = False,
    schedule: bool = False,
) -> Select[Any]:
    """A page of visible executions, newest first, with their files and a capped count.

    Parameters: the filters' (see visible_ids), ``offset``, ``limit``, ``count_limit`` and
    ``max_field_bytes`` (see _bounded_fields).
    """
    visible = visible_ids(
        admin=admin, agent=agent, status=status, dataset=dataset, batch=batch, schedule=schedule
    )
    capped = visible.limit(bindparam("count_limit", type_=Integer)).subquery()
    count = select(func.count()).select_from(capped).scalar_subquery().label("capped_count")
    page_ids = (
        visible.order_by(*NEWEST_FIRST)
        .offset(bindparam("offset", type_=Integer))
        .limit(bindparam("limit", type_=Integer))
        .subquery()
    )
    bounded, columns = _bounded_fields()
    return (
        select(*columns, count)
        .join_from(_executions, page_ids, page_ids.c.id == _executions.c.id)
        .join(bounded, true())
        .order_by(*NEWEST_FIRST)
    )


@functools.cache
def _page_statement(
    *, admin: bool, agent: bool, status: bool, dataset: bool, batch: bool, schedule: bool
) -> Select[Any]:
    # Built once a shape: SQLAlchemy's compiled cache then finds it by identity.
    return page_query(
        admin=admin, agent=agent, status=status, dataset=dataset, batch=batch, schedule=schedule
    )


@dataclass(frozen=True)
class Page:
    executions: Sequence[ExecutionRow]
    has_next: bool
    # Exact up to EXACT_COUNT_LIMIT, else at least EXACT_COUNT_LIMIT + 1 (see count_executions);
    # 0 when the page has no rows.
    capped_count: int


def _counted_by_the_page(offset: int, limit: int) -> bool:
    """Whether the page itself decides the capped count: it reads up to offset + limit + 1
    rows, so either it is the last page (count = offset + its rows) or more than
    EXACT_COUNT_LIMIT rows are visible. Deep pages then skip the capped count's scan."""
    return offset + limit + 1 > EXACT_COUNT_LIMIT


def capped_count_limit(offset: int, limit: int) -> int:
    """The ``count_limit`` a page's statement runs with: 0 (its count reads nothing) when the
    page decides the capped count by itself."""
    return 0 if _counted_by_the_page(offset, limit) else EXACT_COUNT_LIMIT + 1


async def list_executions(
    session: AsyncSession,
    user: User,
    filters: ExecutionFilters,
    *,
    offset: int,
    limit: int,
    max_field_bytes: int,
) -> Page:
    """Newest first: by started_at, then id, both descending. One row more than asked tells
    whether a next page exists, whatever the (possibly estimated) count says. An ``input`` or
    ``result`` larger than ``max_field_bytes`` is None, and ``input_truncated`` or
    ``result_truncated`` true."""
    statement = _page_statement(**_shape(user, filters))
    by_page = _counted_by_the_page(offset, limit)
    values = {
        "offset": offset,
        "limit": limit + 1,
        "count_limit": capped_count_limit(offset, limit),
        "max_field_bytes": max_field_bytes,
        **_values(user, filters),
    }
    rows = (await session.execute(statement, values)).mappings().all()
    if not rows:
        # Nothing is visible at all (page 1), or the page is past the end (not found).
        capped = 0
    elif by_page:
        # The last page: exact; else offset + limit + 1 > EXACT_COUNT_LIMIT rows are visible.
        capped = offset + len(rows)
    else:
        capped = int(rows[0]["capped_count"])
    executions = [ExecutionRow.of(row) for row in rows[:limit]]
    return Page(executions=executions, has_next=len(rows) > limit, capped_count=capped)


class _Explain(Executable, ClauseElement):
    """``EXPLAIN (FORMAT JSON)`` of a query: PostgreSQL plans it with the bound values (a
    utility statement is never given a generic plan), so the estimate is the one for these
    filters. Cached by SQLAlchemy as the query is."""

    inherit_cache = True
    _traverse_internals = [("query", InternalTraversal.dp_clauseelement)]

    def __init__(self, query: Select[Any]) -> None:
        self.query = query


@functools.cache
def _explain_statement(
    *, admin: bool, agent: bool, status: bool, dataset: bool, batch: bool, schedule: bool
) -> _Explain:
    return _Explain(
        visible_ids(
            admin=admin,
            agent=agent,
            status=status,
            dataset=dataset,
            batch=batch,
            schedule=schedule,
        )
    )


@compiles(_Explain)
def _compile_explain(element: _Explain, compiler: SQLCompiler, **kw: Any) -> str:
    return "EXPLAIN (FORMAT JSON) " + compiler.process(element.query, **kw)


async def _planner_estimate(session: AsyncSession, user: User, filters: ExecutionFilters) -> int:
    statement = _explain_statement(**_shape(user, filters))
    plan = (await session.execute(statement, _values(user, filters))).scalar_one()
    document = json.loads(plan) if isinstance(plan, str) else plan
    return int(document[0]["Plan"]["Plan Rows"])


async def count_executions_exactly(
    session: AsyncSession, user: User, filters: ExecutionFilters
) -> int:
    """Every visible execution counted (a scan of the matches): for ``?page=last`` only."""
    visible = visible_ids(**_shape(user, filters)).subquery()
    counted = await session.scalar(
        select(func.count()).select_from(visible), _values(user, filters)
    )
    return int(counted or 0)


async def count_executions(
    session: AsyncSession, user: User, filters: ExecutionFilters, page: Page
) -> int:
    """Exact up to EXACT_COUNT_LIMIT (read with the page), and on the last page (its offset
    plus its rows); else the planner's estimate (never less): only then is a second statement
    run."""
    if page.capped_count <= EXACT_COUNT_LIMIT or (page.executions and not page.has_next):
        return page.capped_count
    return max(page.capped_count, await _planner_estimate(session, user, filters))
