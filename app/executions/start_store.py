"""Storing a validated start (app.executions.start): an earlier request with the same
Idempotency-Key answered, or the user's quotas and the queue checked, the execution inserted
with its conversation and files, and its enqueue registered after the caller's commit."""

import asyncio
import functools
import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from arq.connections import ArqRedis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import Agent
from app.budgets.limits import parse_limits
from app.conversations.storage import Upload, remove_stored, write_upload
from app.core.config import Settings
from app.core.database_errors import is_unique_violation
from app.core.db import after_commit, on_rollback, utcnow
from app.core.errors import Conflict, Invalid, Unavailable
from app.core.tracing import current_traceparent
from app.executions import repository
from app.executions.dispatch import hand_to_workers, wake_workers_safely
from app.executions.models import ExecutionPriority, ExecutionStatus
from app.executions.queue import queue_reachable
from app.executions.quotas import check_quotas
from app.executions.repository import StoredUpload
from app.executions.rows import ExecutionRow, KeyedRequest
from app.executions.start_command import Started, StartExecution, ValidStart
from app.executions.start_request import CopyFiles
from app.executions.transitions import mark_failed

# A repeat of a request with the same Idempotency-Key within this window answers the first
# execution; after it the key is free again.
IDEMPOTENCY_WINDOW = timedelta(hours=24)
QUEUE_UNAVAILABLE = "Job queue unavailable, try again shortly. Nothing was stored."


def request_sha256(
    agent: Agent,
    execution_key: str,
    validated_input: dict[str, Any],
    uploads: Sequence[Upload],
    extra: dict[str, Any] | None = None,
) -> str:
    """A digest of what a start request asks for, to tell a true repeat from a reused key.

    Taken over the validated input, so that ``{}`` and ``{"skus": null}`` are the same request.
    ``extra``: what else the request asks (limits, a retry), only when it asks it, so that the
    digest of a plain start is the one earlier releases stored.
    """
    request = {
        "agent": agent.id,
        "execution_key": execution_key,
        "input": validated_input,
        "files": [[upload.filename, upload.sha256] for upload in uploads],
        **(extra or {}),
    }
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


Row = TypeVar("Row")


@dataclass(frozen=True)
class IdempotencyKeys(Generic[Row]):
    """Where a kind of request keeps its Idempotency-Keys (a start's: ``_START_KEYS``; a
    batch's: app.batches.service), and how a 409 names what an earlier request made."""

    find: Callable[[AsyncSession, int, str], Awaitable[KeyedRequest | None]]
    release: Callable[[AsyncSession, int], Awaitable[None]]
    read: Callable[[AsyncSession, int], Awaitable[Row | None]]
    # "... was used in the last 24 hours for a different {named(id)}; ..."
    named: Callable[[int], str]

    async def earlier_request(
        self, session: AsyncSession, user_id: int, idempotency_key: str, digest: str
    ) -> Row | None:
        """What a live Idempotency-Key of the user already made, or None (an expired key is
        freed); 409 when the key was used for a request with another digest."""
        keyed = await self.find(session, user_id, idempotency_key)
        if keyed is None:
            return None
        if keyed.created_at <= utcnow() - IDEMPOTENCY_WINDOW:
            await self.release(session, keyed.id)
            return None
        if keyed.request_sha256 != digest:
            raise Conflict(
                f"Idempotency-Key {idempotency_key!r} was used in the last 24 hours for a "
                f"different {self.named(keyed.id)}; send a new key for a new request."
            )
        return await self.read(session, keyed.id)


_START_KEYS = IdempotencyKeys(
    find=repository.find_by_idempotency_key,
    release=repository.release_idempotency_key,
    read=repository.get_execution,
    named=lambda execution_id: f"request (execution {execution_id})",
)


def execution_values(valid: ValidStart, digest: str) -> dict[str, Any]:
    """The new execution's columns (but its conversation and time), as
    ``repository.insert_execution`` takes them: for a door that inserts many at once."""
    retry = valid.retry
    return {
        "limits": None if valid.limits is None else valid.limits.stored(),
        "retry_of_id": None if retry is None else retry.of.id,
        "resume_from_id": retry.of.id if retry is not None and retry.resume else None,
        "definition_version": valid.definition.version,
        "agent_id": valid.agent.id,
        "user_id": valid.user.id,
        "dataset_id": valid.agent.dataset_id,
        "execution_key": valid.execution_key,
        "input": valid.input,
        "idempotency_key": valid.idempotency_key,
        "request_sha256": digest,
        # A batch's items are inserted at the batch priority by app.batches.
        "priority": ExecutionPriority.INTERACTIVE,
        # The start request's span (tracing on): the worker's run joins its trace.
        "traceparent": current_traceparent(),
        "schedule_id": valid.schedule_id,
    }


async def _store_execution(
    session: AsyncSession,
    settings: Settings,
    valid: ValidStart,
    uploads: Sequence[Upload],
    digest: str,
    copy_files: CopyFiles | None,
) -> tuple[ExecutionRow, bool]:
    """Store the execution, its locked conversation and files; written files are removed
    again should the rows not be stored. ``copy_files``: a retry's, the earlier execution's
    files linked into the new conversation. Also answers whether it was released to the
    workers at once (else it waits for the dispatcher: app/executions/dispatch.py)."""
    now = utcnow()
    agent, user = valid.agent, valid.user
    values = execution_values(valid, digest)
    insert = functools.partial(
        repository.insert_execution, session, values=values, now=now, fair_share=settings.fair_share
    )
    if copy_files is not None:
        conversation_id = await repository.insert_conversation(
            session, agent_id=agent.id, user_id=user.id, now=now
        )
        linked: list[str] = []
        try:
            await copy_files(conversation_id, now, linked)
            inserted = await insert(conversation_id=conversation_id)
        except BaseException:
            remove_stored(settings.media_root, linked)
            raise
        on_rollback(session, lambda: remove_stored(settings.media_root, linked))
        found = await repository.get_execution(session, inserted.id)
        assert found is not None
        return found, inserted.released
    if not uploads:
        inserted = await insert(conversation_id=None)
        # Everything else is known: spare the read on the hot path.
        row = _new_execution_row(inserted.id, inserted.conversation_id, values, now)
        return row, inserted.released
    # Files are stored under their conversation's id: its row first.
    conversation_id = await repository.insert_conversation(
        session, agent_id=agent.id, user_id=user.id, now=now
    )
    stored: list[StoredUpload] = []
    try:
        for upload in uploads:
            key = await asyncio.to_thread(
                write_upload, settings.media_root, conversation_id, upload
            )
            stored.append(
                StoredUpload(
                    filename=key.rsplit("/", 1)[-1],
                    content_type=upload.content_type,
                    size=len(upload.data),
                    sha256=upload.sha256,
                    storage_key=key,
                    extracted_text=upload.extracted.text,
                    extraction_error=upload.extracted.error,
                )
            )
        await repository.insert_files(session, conversation_id, stored, now)
        inserted = await insert(conversation_id=conversation_id)
    except BaseException:
        remove_stored(settings.media_root, [file.storage_key for file in stored])
        raise
    # The rows may still not be stored: the commit can fail after this returns.
    keys = [file.storage_key for file in stored]
    on_rollback(session, lambda: remove_stored(settings.media_root, keys))
    # The files' ids are the database's: read them back (rare, and costly anyway).
    found = await repository.get_execution(session, inserted.id)
    assert found is not None
    return found, inserted.released


def _new_execution_row(
    execution_id: int, conversation_id: int, values: dict[str, Any], now: datetime
) -> ExecutionRow:
    return ExecutionRow(
        id=execution_id,
        agent_id=values["agent_id"],
        user_id=values["user_id"],
        execution_key=values["execution_key"],
        definition_version=values["definition_version"],
        conversation_id=conversation_id,
        status=ExecutionStatus.PENDING,
        input=values["input"],
        result=None,
        failure_code=None,
        failure_explanation=None,
        started_at=now,
        finished_at=None,
        usage=None,
        limits=values["limits"],
        retry_of_id=values["retry_of_id"],
        resume_from_id=values["resume_from_id"],
        batch_id=None,
        schedule_id=values["schedule_id"],
        traceparent=values["traceparent"],
        files=[],
        retried_by=[],
    )


def request_digest(valid: ValidStart, uploads: Sequence[Upload] = ()) -> str:
    """The digest an Idempotency-Key is stored with for this start (``request_sha256``)."""
    asked: dict[str, Any] = {}
    if valid.limits is not None:
        asked["limits"] = valid.limits.stored()
    if valid.retry is not None:
        asked["retry_of"] = valid.retry.of.id
        asked["resume"] = valid.retry.resume
    return request_sha256(valid.agent, valid.execution_key, valid.input, uploads, asked)


async def store_refused_start(
    session: AsyncSession, command: StartExecution, code: str, explanation: str
) -> ExecutionRow:
    """A start that was refused, recorded as an execution failed with ``code`` and
    ``explanation``: for a door that starts on a user's behalf while nobody waits for the
    answer (a schedule's tick), where a refusal must not vanish. Its input and limits are
    stored as the command has them (limits only if they are still valid); nothing is
    enqueued."""
    agent = command.agent
    try:
        limits = parse_limits(command.limits)
    except Invalid:
        limits = None
    values = {
        "limits": None if limits is None else limits.stored(),
        "retry_of_id": None,
        "resume_from_id": None,
        "definition_version": None,
        "agent_id": agent.id,
        "user_id": command.user.id,
        "dataset_id": agent.dataset_id,
        "execution_key": str(command.execution_key),
        "input": command.raw_input if isinstance(command.raw_input, dict) else {},
        "idempotency_key": None,
        "request_sha256": None,
        "priority": ExecutionPriority.INTERACTIVE,
        "traceparent": current_traceparent(),
        "schedule_id": command.schedule_id,
    }
    # Inserted as released (no dispatcher's turn to wait for), then failed at once.
    inserted = await repository.insert_execution(
        session, conversation_id=None, values=values, now=utcnow(), fair_share=False
    )
    await mark_failed(session, inserted.id, code, explanation)
    found = await repository.get_execution(session, inserted.id)
    assert found is not None
    return found


async def check_queue(queue: ArqRedis, settings: Settings) -> None:
    """503, nothing stored, when the queue is down and the settings say to refuse then."""
    if settings.reject_when_queue_down and not await queue_reachable(queue):
        raise Unavailable(QUEUE_UNAVAILABLE, headers={"Retry-After": "5"})


async def store_start(
    session: AsyncSession,
    queue: ArqRedis,
    settings: Settings,
    valid: ValidStart,
    uploads: Sequence[Upload] = (),
) -> Started:
    """Store the execution, then enqueue it; or answer the one an Idempotency-Key started.

    Enqueued once the caller's transaction is committed (``after_commit``), so a fast
    worker always finds the row. With Redis down the execution is still stored (the
    reconciler enqueues it later), unless the settings say to refuse it. A user past a daily
    quota is refused (429), a repeat of an earlier request excepted.
    """
    user, idempotency_key = valid.user, valid.idempotency_key
    digest = request_digest(valid, uploads)
    if idempotency_key is not None:
        earlier = await _START_KEYS.earlier_request(session, user.id, idempotency_key, digest)
        if earlier is not None:
            return Started(earlier, repeated=True)
    await check_quotas(session, user)
    await check_queue(queue, settings)
    copy_files = None if valid.retry is None else valid.retry.copy_files(session, settings)
    store = functools.partial(
        _store_execution, session, settings, valid, uploads, digest, copy_files
    )
    if idempotency_key is None:
        execution, released = await store()
    else:
        try:
            # A savepoint: should a concurrent request with the same key store first, the
            # request's transaction goes on to read what it stored.
            async with session.begin_nested():
                execution, released = await store()
        except IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
            earlier = await _START_KEYS.earlier_request(session, user.id, idempotency_key, digest)
            if earlier is None:
                raise
            return Started(earlier, repeated=True)
    execution_id = execution.id
    if released:
        after_commit(
            session, lambda: hand_to_workers(session, queue, execution_id, settings.fair_share)
        )
    else:
        # Executions wait for a slot: the dispatcher of a worker whose slot frees up decides.
        after_commit(session, lambda: wake_workers_safely(queue))
    return Started(execution)
