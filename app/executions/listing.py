"""Reading executions: one by id, and the list (visibility, filters, the count, one page).

Three choices keep a page fast at millions of rows:

- the page's ids are chosen from an index alone (ORDER BY started_at, id with OFFSET), and
  only those rows are read, so a deep page does not read every row it skips;
- the count is exact up to ``EXACT_COUNT_LIMIT`` and on the last page; past it, it is
  PostgreSQL's planner estimate for the same query, so no page costs a scan of every matching
  row. A page that reaches past ``EXACT_COUNT_LIMIT`` rows decides the capped count by itself
  (it is the last page, or more rows are visible), so deep pages skip the count's scan.
  Whether a page exists, or has a next one, is decided by its rows, never by the count;
- the page, its count and each execution's files are one statement, run on asyncpg
  (app/core/sql.py): one round trip, and no ORM objects built for rows that are only shown.
"""

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    String,
    Text,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    or_,
    select,
    true,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.selectable import LateralFromClause

from app.auth.models import User
from app.auth.service import Authenticated, authenticate_beside, token_beside
from app.conversations.models import ConversationFile
from app.core import sql
from app.executions.models import AgenticExecution, ExecutionStatus

EXACT_COUNT_LIMIT = 10_000

_executions = AgenticExecution.__table__
_files = ConversationFile.__table__
NEWEST_FIRST = (_executions.c.started_at.desc(), _executions.c.id.desc())
# What the contract shows of an execution (besides its files).
SHOWN_COLUMNS = (
    _executions.c.id,
    _executions.c.agent_id,
    _executions.c.user_id,
    _executions.c.execution_key,
    _executions.c.definition_version,
    _executions.c.conversation_id,
    _executions.c.status,
    _executions.c.input,
    _executions.c.result,
    _executions.c.failure_code,
    _executions.c.failure_explanation,
    _executions.c.started_at,
    _executions.c.finished_at,
)

# An execution as read here: the SHOWN_COLUMNS by name, and "files" (a list of dicts with id,
# filename, storage_key and content_type, in upload order).
ExecutionRow = Mapping[str, Any]


def _files_of_each_execution() -> ColumnElement[Any]:
    """The visible files of the execution's conversation, as a JSON array (one index lookup)."""
    as_json = func.json_build_object(
        "id",
        _files.c.id,
        "filename",
        _files.c.filename,
        "storage_key",
        _files.c.storage_key,
        "content_type",
        _files.c.content_type,
    )
    files = (
        select(func.json_agg(postgresql.aggregate_order_by(as_json, _files.c.id)))
        .where(
            _files.c.conversation_id == _executions.c.conversation_id,
            _files.c.hidden.is_(False),
        )
        .scalar_subquery()
    )
    return func.coalesce(files, literal_column("'[]'::json"))


# An ExecutionRow's columns.
_SHOWN = (*SHOWN_COLUMNS, _files_of_each_execution().label("files"))
_ONE = sql.compile_statement(select(*_SHOWN).where(_executions.c.id == bindparam("execution_id")))


async def get_execution(session: AsyncSession, execution_id: int) -> ExecutionRow | None:
    """The execution with this id and its files, whoever may see it."""
    return await sql.fetchrow(session, _ONE, execution_id=execution_id)


# Polling an execution authenticates the token and reads the execution in one round trip.
_TOKEN_AND_VISIBLE_EXECUTION = token_beside(
    "execution_",
    _executions,
    {column.name: column for column in _SHOWN},
    lambda token: and_(
        _executions.c.id == bindparam("execution_id", type_=Integer),
        or_(token.c.is_admin, _executions.c.user_id == token.c.id),
    ),
)


async def authenticate_for_execution(
    session: AsyncSession, raw_key: str, execution_id: int
) -> tuple[Authenticated | None, ExecutionRow | None]:
    """The live token with this key and its user (None if there is none), and the execution
    with its files if that user may see it (its owner, or an admin; None if not)."""
    return await authenticate_beside(
        session, raw_key, _TOKEN_AND_VISIBLE_EXECUTION, execution_id=execution_id
    )


@dataclass(frozen=True)
class ExecutionFilters:
    agent_id: int | None = None
    status: ExecutionStatus | None = None
    dataset_id: int | None = None


def visible_ids(*, admin: bool, agent: bool, status: bool, dataset: bool) -> Select[Any]:
    """The ids a user may see, filtered; the values are bound parameters of the same names."""
    query = select(_executions.c.id)
    if not admin:
        query = query.where(_executions.c.user_id == bindparam("user_id", type_=Integer))
    if agent:
        query = query.where(_executions.c.agent_id == bindparam("agent_id", type_=Integer))
    if status:
        query = query.where(_executions.c.status == bindparam("status", type_=String))
    if dataset:
        query = query.where(_executions.c.dataset_id == bindparam("dataset_id", type_=Integer))
    return query


def _shape(user: User, filters: ExecutionFilters) -> dict[str, bool]:
    # One statement per combination of filters, not one with "x IS NULL OR" conditions: each
    # combination has its own index, which a generic plan would not pick.
    return {
        "admin": user.is_admin,
        "agent": filters.agent_id is not None,
        "status": filters.status is not None,
        "dataset": filters.dataset_id is not None,
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
    for column in _SHOWN:
        if column.name in BOUNDED_FIELDS:
            over = flags.c[f"{column.name}_truncated"]
            columns.append(case((over, None), else_=column).label(column.name))
            columns.append(over)
        else:
            columns.append(column)
    return flags, columns


def page_query(*, admin: bool, agent: bool, status: bool, dataset: bool) -> Select[Any]:
    """A page of visible executions, newest first, with their files and a capped count.

    Parameters: the filters' (see visible_ids), ``offset``, ``limit``, ``count_limit`` and
    ``max_field_bytes`` (see _bounded_fields).
    """
    visible = visible_ids(admin=admin, agent=agent, status=status, dataset=dataset)
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
def _compiled_page(*, admin: bool, agent: bool, status: bool, dataset: bool) -> sql.Statement:
    return sql.compile_statement(
        page_query(admin=admin, agent=agent, status=status, dataset=dataset)
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
    statement = _compiled_page(**_shape(user, filters))
    by_page = _counted_by_the_page(offset, limit)
    rows = await sql.fetch(
        session,
        statement,
        offset=offset,
        limit=limit + 1,
        count_limit=capped_count_limit(offset, limit),
        max_field_bytes=max_field_bytes,
        **_values(user, filters),
    )
    if not rows:
        # Nothing is visible at all (page 1), or the page is past the end (not found).
        capped = 0
    elif by_page:
        # The last page: exact; else offset + limit + 1 > EXACT_COUNT_LIMIT rows are visible.
        capped = offset + len(rows)
    else:
        capped = int(rows[0]["capped_count"])
    return Page(executions=rows[:limit], has_next=len(rows) > limit, capped_count=capped)


@functools.cache
def _compiled_estimate(*, admin: bool, agent: bool, status: bool, dataset: bool) -> sql.Statement:
    # EXPLAIN plans the query with the bound values (a utility statement is never given a
    # generic plan), so the estimate is the one for these filters.
    visible = sql.compile_statement(
        visible_ids(admin=admin, agent=agent, status=status, dataset=dataset)
    )
    return sql.Statement(f"EXPLAIN (FORMAT JSON) {visible.sql}", visible.params, visible.fixed)


async def _planner_estimate(session: AsyncSession, user: User, filters: ExecutionFilters) -> int:
    statement = _compiled_estimate(**_shape(user, filters))
    plan = await sql.fetchval(session, statement, **_values(user, filters))
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
