"""The statements on batches: the insert of a batch and of all its items (one statement for
the items and their conversations, whatever their number), a batch with its counts, the list,
the results a chunk at a time. SQLAlchemy Core on the caller's session."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Integer,
    Select,
    String,
    Table,
    and_,
    bindparam,
    func,
    insert,
    literal,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import User
from app.batches.models import AgenticExecutionBatch
from app.conversations.models import Conversation
from app.executions.models import AgenticExecution, ExecutionPriority, ExecutionStatus
from app.executions.rows import KeyedRequest

_batches = cast(Table, AgenticExecutionBatch.__table__)
_executions = cast(Table, AgenticExecution.__table__)
_conversations = cast(Table, Conversation.__table__)

# A batch as read here: its columns by name, and its items counted by status
# ("pending", "in_progress", "finished", "failed").
BatchRow = Mapping[str, Any]


def _count(status: ExecutionStatus) -> ColumnElement[int]:
    return func.count().filter(_executions.c.status == status.value).label(status.value)


# Each batch's items counted by status: one index-only range of ix_agentic_executions_batch_status.
_COUNTS = (
    select(*(_count(status) for status in ExecutionStatus))
    .where(_executions.c.batch_id == _batches.c.id)
    .correlate(_batches)
    .lateral("counts")
)
_BATCH_COLUMNS = (*_batches.c, *(_COUNTS.c[status.value] for status in ExecutionStatus))


def _with_counts() -> Select[Any]:
    return select(*_BATCH_COLUMNS).join_from(_batches, _COUNTS, true())


_ONE = _with_counts().where(_batches.c.id == bindparam("batch_id", type_=Integer))


async def get_batch(session: AsyncSession, batch_id: int) -> BatchRow | None:
    """The batch with its counts, whoever may see it."""
    result = await session.execute(_ONE, {"batch_id": batch_id})
    return cast(BatchRow | None, result.mappings().first())


def is_visible_to(user: User, batch: BatchRow) -> bool:
    """Who may see a batch: its owner, and admins (as an execution)."""
    return user.is_admin or batch["user_id"] == user.id


NEWEST_FIRST = (_batches.c.created_at.desc(), _batches.c.id.desc())


async def list_batches(
    session: AsyncSession, user: User, *, offset: int, limit: int
) -> Sequence[BatchRow]:
    """A page of the batches ``user`` may see, newest first, with their counts (the page's
    batches are chosen from an index, then counted)."""
    page = select(_batches.c.id).order_by(*NEWEST_FIRST).offset(offset).limit(limit)
    if not user.is_admin:
        page = page.where(_batches.c.user_id == user.id)
    ids = page.subquery()
    query = _with_counts().join(ids, ids.c.id == _batches.c.id).order_by(*NEWEST_FIRST)
    return cast(Sequence[BatchRow], (await session.execute(query)).mappings().all())


async def count_batches(session: AsyncSession, user: User) -> int:
    query = select(func.count()).select_from(_batches)
    if not user.is_admin:
        query = query.where(_batches.c.user_id == user.id)
    return int(await session.scalar(query) or 0)


# Writing a batch.


_BY_IDEMPOTENCY_KEY = select(_batches.c.id, _batches.c.created_at, _batches.c.request_sha256).where(
    _batches.c.user_id == bindparam("user_id"),
    _batches.c.idempotency_key == bindparam("idempotency_key"),
)


async def find_by_idempotency_key(
    session: AsyncSession, user_id: int, idempotency_key: str
) -> KeyedRequest | None:
    """The batch the key submitted, if any."""
    values = {"user_id": user_id, "idempotency_key": idempotency_key}
    row = (await session.execute(_BY_IDEMPOTENCY_KEY, values)).first()
    return None if row is None else KeyedRequest(*row)


async def release_idempotency_key(session: AsyncSession, batch_id: int) -> None:
    await session.execute(
        update(_batches).where(_batches.c.id == batch_id).values(idempotency_key=None)
    )


async def insert_batch(session: AsyncSession, values: Mapping[str, Any]) -> int:
    return int(
        (
            await session.execute(insert(_batches).values(values).returning(_batches.c.id))
        ).scalar_one()
    )


def _insert_items() -> Any:
    """Every item of a batch and its locked conversation in one statement, whatever their
    number: the conversations from ``generate_series``, the items from the elements of one
    JSON array (``inputs``) with their positions, each paired with one new conversation (all
    alike). Parameters: the batch's values, ``count``, ``inputs`` and ``now``."""
    conversations = (
        insert(_conversations)
        .from_select(
            ["agent_id", "user_id", "locked", "created_at"],
            select(
                bindparam("agent_id", type_=Integer),
                bindparam("user_id", type_=Integer),
                literal(True),
                bindparam("now", type_=DateTime(timezone=True)),
            ).select_from(func.generate_series(1, bindparam("count", type_=Integer))),
        )
        .returning(_conversations.c.id)
        .cte("conversation")
    )
    numbered = select(
        conversations.c.id,
        func.row_number().over(order_by=conversations.c.id).label("position"),
    ).subquery("numbered")
    elements = (
        func.jsonb_array_elements(bindparam("inputs", type_=JSONB))
        .table_valued("value", with_ordinality="position")
        .render_derived("element")
    )
    # The item's index: its position in the request, from 0.
    item = (elements.c.position - 1).label("batch_item")
    columns: dict[str, ColumnElement[Any]] = {
        "agent_id": bindparam("agent_id", type_=Integer),
        "user_id": bindparam("user_id", type_=Integer),
        "dataset_id": bindparam("dataset_id", type_=Integer),
        "execution_key": bindparam("execution_key", type_=String),
        "status": literal(ExecutionStatus.PENDING.value),
        "input": elements.c.value,
        "attempts": literal(0),
        "started_at": bindparam("now", type_=DateTime(timezone=True)),
        "definition_version": bindparam("definition_version", type_=String),
        "limits": bindparam("limits", type_=JSONB),
        "conversation_id": numbered.c.id,
        "batch_id": bindparam("batch_id", type_=Integer),
        "batch_item": item,
        # Null: the items wait for the dispatcher (fair share); else released at insert.
        "dispatched_at": bindparam("released_at", type_=DateTime(timezone=True)),
        **{name: literal(value) for name, value in ITEM_VALUES.items()},
    }
    rows = select(*columns.values()).join_from(
        elements, numbered, numbered.c.position == elements.c.position
    )
    return (
        insert(_executions)
        .from_select(list(columns), rows)
        .returning(_executions.c.id)
        .add_cte(conversations)
    )


# The one place an item's scheduling priority is set: below interactive starts, fairly
# shared among users by the dispatcher (app/executions/dispatch.py).
ITEM_VALUES: dict[str, Any] = {"priority": ExecutionPriority.BATCH.value}

_INSERT_ITEMS = _insert_items()


@dataclass(frozen=True)
class NewItems:
    """A batch's items to insert (their inputs validated and dumped, in request order)."""

    batch_id: int
    agent_id: int
    user_id: int
    dataset_id: int
    execution_key: str
    definition_version: str | None
    limits: dict[str, Any] | None
    inputs: Sequence[dict[str, Any]]


async def insert_items(
    session: AsyncSession, items: NewItems, now: datetime, *, released: bool
) -> list[int]:
    """Insert the items (pending executions) and their conversations; their ids, in order.
    ``released``: handed to the workers at once (fair share off), else they wait for the
    dispatcher."""
    parameters = {
        "batch_id": items.batch_id,
        "agent_id": items.agent_id,
        "user_id": items.user_id,
        "dataset_id": items.dataset_id,
        "execution_key": items.execution_key,
        "definition_version": items.definition_version,
        "limits": items.limits,
        "inputs": list(items.inputs),
        "count": len(items.inputs),
        "now": now,
        "released_at": now if released else None,
    }
    result = await session.execute(_INSERT_ITEMS, parameters)
    return sorted(result.scalars().all())


# Reading a batch's items.


_RESULTS = (
    select(
        _executions.c.batch_item.label("item"),
        _executions.c.id.label("execution_id"),
        _executions.c.status,
        _executions.c.result,
        _executions.c.failure_code,
        _executions.c.failure_explanation,
    )
    .where(
        _executions.c.batch_id == bindparam("batch_id", type_=Integer),
        _executions.c.batch_item > bindparam("after", type_=Integer),
    )
    .order_by(_executions.c.batch_item)
    .limit(bindparam("limit", type_=Integer))
)


async def results_after(
    session: AsyncSession, batch_id: int, after: int, limit: int
) -> Sequence[Mapping[str, Any]]:
    """Up to ``limit`` items of the batch after item ``after``, in submission order (a range
    of ix_agentic_executions_batch_item: keyset pagination, no OFFSET)."""
    values = {"batch_id": batch_id, "after": after, "limit": limit}
    return cast(
        Sequence[Mapping[str, Any]], (await session.execute(_RESULTS, values)).mappings().all()
    )


async def request_cancel(
    session: AsyncSession, batch_id: int, username: str, now: datetime
) -> None:
    """Record who asked first to cancel the batch, and when (a second request keeps them)."""
    await session.execute(
        update(_batches)
        .where(and_(_batches.c.id == batch_id, _batches.c.cancel_requested_at.is_(None)))
        .values(cancel_requested_at=now, cancel_requested_by=username)
    )
