"""Submitting, reading and cancelling batches. Each item is an ordinary execution of the
batch's agent and key: validated as a single start is (app/batches/submission.py), counted
against the same quotas, run, cancelled and reconciled by the same code."""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis
from pydantic_core import to_json
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import Agent
from app.auth.models import User
from app.batches import repository
from app.batches.repository import BatchRow, NewItems
from app.budgets.limits import Limits
from app.core.config import Settings
from app.core.database_errors import is_unique_violation
from app.core.db import after_commit, utcnow
from app.core.errors import Conflict, NotFound
from app.definitions.base import ExecutionDefinition
from app.executions import transitions
from app.executions.dispatch import wake_workers_safely
from app.executions.models import AgenticExecution
from app.executions.queue import abort_execution_job, enqueue_executions
from app.executions.quotas import check_quotas
from app.executions.start_store import IdempotencyKeys, check_queue


def request_sha256(
    agent: Agent, execution_key: str, inputs: Sequence[dict[str, Any]], limits: Any
) -> str:
    """A digest of what a batch request asks for, to tell a true repeat from a reused key."""
    digest = hashlib.sha256(
        to_json({"agent": agent.id, "execution_key": execution_key, "limits": limits})
    )
    for validated in inputs:
        digest.update(b"\n")
        digest.update(to_json(validated))
    return digest.hexdigest()


_BATCH_KEYS = IdempotencyKeys(
    find=repository.find_by_idempotency_key,
    release=repository.release_idempotency_key,
    read=repository.get_batch,
    named=lambda batch_id: f"batch ({batch_id})",
)


@dataclass(frozen=True)
class Submitted:
    batch: BatchRow
    # True when an earlier request with the same Idempotency-Key submitted it.
    repeated: bool = False


async def _store(
    session: AsyncSession,
    queue: ArqRedis,
    settings: Settings,
    *,
    user: User,
    agent: Agent,
    definition: ExecutionDefinition,
    inputs: Sequence[dict[str, Any]],
    limits: dict[str, Any] | None,
    idempotency_key: str | None,
    digest: str,
) -> int:
    now = utcnow()
    batch_id = await repository.insert_batch(
        session,
        {
            "agent_id": agent.id,
            "user_id": user.id,
            "execution_key": definition.key,
            "total": len(inputs),
            "limits": limits,
            "created_at": now,
            "idempotency_key": idempotency_key,
            "request_sha256": digest,
        },
    )
    item_ids = await repository.insert_items(
        session,
        NewItems(
            batch_id=batch_id,
            agent_id=agent.id,
            user_id=user.id,
            dataset_id=agent.dataset_id,
            execution_key=definition.key,
            definition_version=definition.version,
            limits=limits,
            inputs=inputs,
        ),
        now,
        released=not settings.fair_share,
    )
    if settings.fair_share:
        # The items wait for the dispatcher: a worker with a free slot releases them fairly.
        after_commit(session, lambda: wake_workers_safely(queue))
    else:
        after_commit(session, lambda: enqueue_executions(queue, item_ids))
    return batch_id


async def submit_batch(
    session: AsyncSession,
    queue: ArqRedis,
    settings: Settings,
    *,
    user: User,
    agent: Agent,
    definition: ExecutionDefinition,
    inputs: Sequence[dict[str, Any]],
    limits: Limits | None = None,
    idempotency_key: str | None = None,
) -> Submitted:
    """Store the batch and its items (``inputs``: validated by ``submission.validate_items``)
    in the request's transaction, then enqueue the items in one round trip once it commits;
    or answer the batch an Idempotency-Key submitted. The user's daily quotas count every
    item: a batch that would pass one is refused whole (429)."""
    stored_limits = None if limits is None else limits.stored()
    digest = request_sha256(agent, definition.key, inputs, stored_limits)
    if idempotency_key is not None:
        earlier = await _BATCH_KEYS.earlier_request(session, user.id, idempotency_key, digest)
        if earlier is not None:
            return Submitted(earlier, repeated=True)
    await check_quotas(session, user, new_executions=len(inputs))
    await check_queue(queue, settings)
    arguments: dict[str, Any] = {
        "user": user,
        "agent": agent,
        "definition": definition,
        "inputs": inputs,
        "limits": stored_limits,
        "idempotency_key": idempotency_key,
        "digest": digest,
    }
    if idempotency_key is None:
        batch_id = await _store(session, queue, settings, **arguments)
    else:
        try:
            # A savepoint: should a concurrent request with the same key store first, this
            # one goes on to read what it stored.
            async with session.begin_nested():
                batch_id = await _store(session, queue, settings, **arguments)
        except IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
            earlier = await _BATCH_KEYS.earlier_request(session, user.id, idempotency_key, digest)
            if earlier is None:
                raise
            return Submitted(earlier, repeated=True)
    batch = await repository.get_batch(session, batch_id)
    assert batch is not None
    return Submitted(batch)


async def get_visible_batch(session: AsyncSession, user: User, batch_id: int) -> BatchRow:
    """The batch with its counts, if ``user`` owns it or is an admin; else 404."""
    batch = await repository.get_batch(session, batch_id)
    if batch is None or not repository.is_visible_to(user, batch):
        raise NotFound("Batch not found.")
    return batch


@dataclass(frozen=True)
class Page:
    batches: Sequence[BatchRow]
    count: int


async def list_batches(session: AsyncSession, user: User, *, offset: int, limit: int) -> Page:
    """The batches ``user`` may see (all, for an admin), newest first."""
    batches = await repository.list_batches(session, user, offset=offset, limit=limit)
    return Page(batches, await repository.count_batches(session, user))


@dataclass(frozen=True)
class BatchCancellation:
    batch: BatchRow
    # Running items asked to stop (their workers record the failure); 0: all ended now.
    stopping: int


async def cancel_batch(
    session: AsyncSession, queue: ArqRedis, settings: Settings, user: User, batch_id: int
) -> BatchCancellation:
    """Cancel a batch of ``user`` (any, for admins): its pending items fail ``cancelled`` at
    once (one UPDATE), its running ones are asked to stop as ``cancel_execution`` asks one
    (marked, their jobs aborted after commit). 409 when every item had ended already."""
    batch = await get_visible_batch(session, user, batch_id)
    if batch["finished_at"] is not None:
        raise Conflict("Batch already finished.")
    now = utcnow()
    # Items first, the batch row last: the order a worker ending an item locks them in.
    items = AgenticExecution.batch_id == batch_id
    running = await transitions.request_cancellation(session, items, user.username)
    await transitions.cancel_pending(session, items, user.username)
    await repository.request_cancel(session, batch_id, user.username, now)

    async def abort_running() -> None:
        for execution_id in running:
            await abort_execution_job(queue, settings, execution_id)

    if running:
        after_commit(session, abort_running)
    cancelled = await repository.get_batch(session, batch_id)
    assert cancelled is not None
    return BatchCancellation(cancelled, stopping=len(running))
