"""Fair dispatch: which waiting executions the workers get when there are more than slots.

PostgreSQL holds what waits; arq only what was released. An execution is *waiting* while it is
pending with no ``dispatched_at`` (models.WAITING), *released* once it has one. On a service
with a free slot nothing waits: the API inserts an execution released and enqueues it at once
(``service.start_execution``, ``queue.enqueue_execution``: refused when jobs already wait in
arq's queue, i.e. every slot is taken, and then left waiting). A worker with free slots and
nothing in arq's queue calls ``release_waiting`` for them (workers/process/dispatcher.py), then
enqueues what it released.

``release_waiting`` runs under one transaction-level advisory lock, so every worker of the
fleet shares one fairness. For each free slot it picks:

1. the priority level: ``interactive`` before ``batch``, except that batch gets the next slot
   while its share of recent releases is under AGENTRUN_FAIR_SHARE_BATCH_SHARE (10 %) and
   batch executions wait: batch is never starved, and gets at least that share;
2. within that level, the key (the user, or the dataset: AGENTRUN_FAIR_SHARE_KEY) with the
   least load over weight: load is its executions in flight (released or running) plus its
   recent releases (a count that halves every AGENTRUN_FAIR_SHARE_HALF_LIFE_SECONDS); ties go
   to the key whose oldest waiting execution is older;
3. within that key, its oldest waiting execution.

Cost: the keys that wait at a level are read by a skip scan of a partial index holding only
waiting executions (one index probe per waiting key, not per waiting execution), what is in
flight by the partial index of released executions and the status index's running ones (as
many as the fleet's slots), then one UPDATE per key chosen. Nothing grows with the backlog:
bench/scenarios/fairness.py measures it at 1,000 and 100,000 waiting.
"""

import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from arq.connections import ArqRedis
from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    exists,
    func,
    literal_column,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import User
from app.core.config import Settings
from app.executions.models import (
    AgenticExecution,
    ExecutionPriority,
    FairShareUsage,
)
from app.executions.queue import (
    QUEUE_ERRORS,
    Enqueued,
    enqueue_execution,
    enqueue_unless_busy,
    wake_workers,
)

logger = logging.getLogger(__name__)

# pg_advisory_xact_lock's key for the dispatcher ("agentrun" in ASCII).
DISPATCH_LOCK = 0x6167656E7472756E
# Highest first.
LEVELS = (ExecutionPriority.INTERACTIVE, ExecutionPriority.BATCH)
LEVEL_RANK = {level: rank for rank, level in enumerate(LEVELS)}
PRIORITY_KIND = "priority"
# A key with fewer waiting executions than it was given: its slots go round again, this often.
ROUNDS = 3

_executions = cast(Table, AgenticExecution.__table__)

# Literals, not parameters: PostgreSQL proves a partial index's predicate only from constants.
_PENDING: ColumnElement[str] = literal_column("'pending'")
_IN_PROGRESS: ColumnElement[str] = literal_column("'in_progress'")


def waiting(table: Any = _executions) -> ColumnElement[bool]:
    return and_(table.c.status == _PENDING, table.c.dispatched_at.is_(None))


def released(table: Any = _executions) -> ColumnElement[bool]:
    return and_(table.c.status == _PENDING, table.c.dispatched_at.is_not(None))


def in_flight(table: Any = _executions) -> ColumnElement[bool]:
    return or_(table.c.status == _IN_PROGRESS, released(table))


# Whether anything waits (one probe of a partial index, empty on an idle service): the API
# inserts a new execution released when nothing does.
NOTHING_WAITS = ~exists().where(waiting())


def _key_name(settings: Settings) -> str:
    return "user_id" if settings.fair_share_key == "user" else "dataset_id"


@dataclass
class _Head:
    """A key's oldest waiting execution at one level (its place among equal loads)."""

    started_at: datetime
    id: int


async def _heads(session: AsyncSession, key_name: str) -> dict[ExecutionPriority, dict[int, _Head]]:
    """The keys with executions waiting, by level, each with its oldest: a skip scan
    (recursive CTE) of the waiting index over (priority, key), one probe a pair."""

    def first_after(table: Any, after: ColumnElement[bool]) -> Any:
        key = table.c[key_name]
        return (
            select(
                table.c.priority.label("priority"), key.label("key"), table.c.started_at, table.c.id
            )
            .where(waiting(table), after)
            .order_by(table.c.priority, key, table.c.started_at, table.c.id)
            .limit(1)
        )

    heads = first_after(_executions, true()).cte("heads", recursive=True)
    following = _executions.alias("following")
    beyond = tuple_(following.c.priority, following.c[key_name]) > tuple_(
        heads.c.priority, heads.c.key
    )
    step = first_after(following, beyond).lateral("step")
    heads = heads.union_all(
        select(step.c.priority, step.c.key, step.c.started_at, step.c.id).select_from(
            heads.join(step, true())
        )
    )
    found: dict[ExecutionPriority, dict[int, _Head]] = {level: {} for level in LEVELS}
    rows = await session.execute(
        select(heads.c.priority, heads.c.key, heads.c.started_at, heads.c.id)
    )
    for priority, key, started_at, id_ in rows:
        found[ExecutionPriority(priority)][key] = _Head(started_at, id_)
    return found


async def _in_flight(session: AsyncSession, key_name: str, keys: list[int]) -> dict[int, int]:
    key = _executions.c[key_name]
    rows = await session.execute(
        select(key, func.count()).where(in_flight(), key.in_(keys)).group_by(key)
    )
    return {key_value: int(count) for key_value, count in rows}


async def _usage(
    session: AsyncSession, kind: str, keys: list[int], now: datetime, half_life: float
) -> tuple[dict[int, float], dict[int, float]]:
    """The recent releases of ``keys`` and of each level, decayed to ``now``."""
    rows = await session.execute(
        select(
            FairShareUsage.kind, FairShareUsage.key, FairShareUsage.usage, FairShareUsage.updated_at
        ).where(
            or_(
                and_(FairShareUsage.kind == kind, FairShareUsage.key.in_(keys)),
                FairShareUsage.kind == PRIORITY_KIND,
            )
        )
    )
    by_key: dict[int, float] = {}
    by_level: dict[int, float] = {}
    for row_kind, key, usage, updated_at in rows:
        age = max(0.0, (now - updated_at).total_seconds())
        decayed = usage * math.pow(0.5, age / half_life)
        (by_level if row_kind == PRIORITY_KIND else by_key)[key] = decayed
    return by_key, by_level


async def _weights(session: AsyncSession, settings: Settings, keys: list[int]) -> dict[int, float]:
    if settings.fair_share_key != "user":
        return {}
    rows = await session.execute(select(User.id, User.fair_share_weight).where(User.id.in_(keys)))
    return {user_id: float(weight) for user_id, weight in rows}


def _level_for(
    waiting_levels: list[ExecutionPriority], level_usage: dict[int, float], batch_share: float
) -> ExecutionPriority:
    top = waiting_levels[0]
    if ExecutionPriority.BATCH not in waiting_levels or top == ExecutionPriority.BATCH:
        return top
    batch = level_usage.get(LEVEL_RANK[ExecutionPriority.BATCH], 0.0)
    total = sum(level_usage.get(LEVEL_RANK[level], 0.0) for level in waiting_levels)
    if total > 0 and batch / total < batch_share:
        return ExecutionPriority.BATCH
    return top


async def _release(
    session: AsyncSession,
    level: ExecutionPriority,
    key_name: str,
    key: int,
    count: int,
    now: datetime,
) -> list[int]:
    """Mark the key's ``count`` oldest waiting executions at ``level`` released."""
    column = _executions.c[key_name]
    oldest = (
        select(_executions.c.id)
        .where(waiting(), _executions.c.priority == level.value, column == key)
        .order_by(_executions.c.started_at, _executions.c.id)
        .limit(count)
    )
    return await _mark_released(session, oldest, now)


async def _mark_released(session: AsyncSession, chosen: Any, now: datetime) -> list[int]:
    """Mark the executions ``chosen`` selects (ids) released; their ids."""
    # A cancellation of one of them at this moment: skipped, not waited for.
    locked = chosen.with_for_update(skip_locked=True).scalar_subquery()
    rows = await session.execute(
        update(_executions)
        .where(_executions.c.id.in_(locked))
        .values(dispatched_at=now)
        .returning(_executions.c.id)
    )
    return [row.id for row in rows]


async def _release_fifo(session: AsyncSession, slots: int, now: datetime) -> list[int]:
    """Fair share off: the oldest waiting executions (higher priority first)."""
    ids: list[int] = []
    for level in LEVELS:
        if len(ids) >= slots:
            break
        oldest = (
            select(_executions.c.id)
            .where(waiting(), _executions.c.priority == level.value)
            .order_by(_executions.c.started_at, _executions.c.id)
            .limit(slots - len(ids))
        )
        ids.extend(await _mark_released(session, oldest, now))
    return ids


async def _record_usage(
    session: AsyncSession,
    kind: str,
    by_key: dict[int, float],
    by_level: dict[int, float],
    now: datetime,
) -> None:
    rows = [
        {"kind": row_kind, "key": key, "usage": value, "updated_at": now}
        for row_kind, values in ((kind, by_key), (PRIORITY_KIND, by_level))
        for key, value in values.items()
    ]
    if not rows:
        return
    statement = insert(FairShareUsage).values(rows)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[FairShareUsage.kind, FairShareUsage.key],
            set_={"usage": statement.excluded.usage, "updated_at": statement.excluded.updated_at},
        )
    )


async def release_waiting(session: AsyncSession, settings: Settings, slots: int) -> list[int]:
    """Release up to ``slots`` waiting executions, fairly (module docstring); their ids.

    Runs in the caller's transaction, which must commit before the ids are enqueued (a worker
    must find them released). Serialised with every other dispatcher of the fleet by an
    advisory lock held until that commit.
    """
    if slots <= 0:
        return []
    # The lock only when something waits (an idle worker asks every poll).
    locked = (
        await session.execute(
            select(func.pg_advisory_xact_lock(DISPATCH_LOCK), func.now()).where(~NOTHING_WAITS)
        )
    ).first()
    if locked is None:
        return []
    now: datetime = locked[1]
    if not settings.fair_share:
        return await _release_fifo(session, slots, now)
    key_name = _key_name(settings)
    kind = settings.fair_share_key
    half_life = settings.fair_share_half_life_seconds
    heads = await _heads(session, key_name)
    keys = sorted({key for level_heads in heads.values() for key in level_heads})
    if not keys:
        return []
    flying = await _in_flight(session, key_name, keys)
    usage, level_usage = await _usage(session, kind, keys, now, half_life)
    weights = await _weights(session, settings, keys)
    load = {key: flying.get(key, 0) + usage.get(key, 0.0) for key in keys}
    released_ids: list[int] = []
    for _ in range(ROUNDS):
        wanted = slots - len(released_ids)
        waiting_levels = [level for level in LEVELS if heads[level]]
        if wanted <= 0 or not waiting_levels:
            break
        given: dict[tuple[ExecutionPriority, int], int] = defaultdict(int)
        for _slot in range(wanted):
            level = _level_for(waiting_levels, level_usage, settings.fair_share_batch_share)
            level_heads = heads[level]
            key = min(
                level_heads,
                key=lambda k: (
                    load[k] / weights.get(k, 1.0),
                    level_heads[k].started_at,
                    level_heads[k].id,
                ),
            )
            given[level, key] += 1
            # Released: in flight, and recently released.
            load[key] += 2
            usage[key] = usage.get(key, 0.0) + 1
            rank = LEVEL_RANK[level]
            level_usage[rank] = level_usage.get(rank, 0.0) + 1
        for (level, key), count in given.items():
            ids = await _release(session, level, key_name, key, count, now)
            released_ids.extend(ids)
            if len(ids) < count:
                # No more waiting there: the slots it leaves go round again.
                heads[level].pop(key, None)
                usage[key] -= count - len(ids)
                load[key] -= 2 * (count - len(ids))
                level_usage[LEVEL_RANK[level]] -= count - len(ids)
    await _record_usage(session, kind, usage, level_usage, now)
    return released_ids


async def hand_to_workers(
    session: AsyncSession, queue: ArqRedis, execution_id: int, fair_share: bool
) -> None:
    """After the insert of a released execution committed: enqueue it, unless jobs already
    wait in arq's queue (every slot taken: ``queue.enqueue_unless_busy``); then it goes back
    to waiting, for the dispatcher to release in its turn. Runs after the request's commit,
    on its session (a transaction of its own)."""
    if not fair_share:
        await enqueue_execution(queue, execution_id)
        return
    if await enqueue_unless_busy(queue, execution_id) != Enqueued.BUSY:
        return
    try:
        await session.execute(
            update(_executions)
            .where(_executions.c.id == execution_id, released())
            .values(dispatched_at=None)
        )
        await session.commit()
    except Exception as exc:
        # Left released without a job: the reconciler enqueues it once it looks stale.
        logger.warning("could not put execution %s back to wait: %s", execution_id, exc)
        return
    await wake_workers_safely(queue)


async def wake_workers_safely(queue: ArqRedis) -> None:
    """Wake a worker (one with a free slot releases what waits); best effort: a worker
    dispatches on its next poll anyway."""
    try:
        await wake_workers(queue, queue.default_queue_name)
    except QUEUE_ERRORS as exc:
        logger.warning("could not wake the workers: %s", exc)
