"""Starting, reading and cancelling agentic executions (what a start request sends is
checked by app.executions.start_request first)."""

import asyncio
import functools
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import Agent
from app.auth.models import User
from app.budgets.limits import Limits
from app.budgets.quotas import check_quotas
from app.conversations.storage import Upload, remove_stored, write_upload
from app.core.config import Settings
from app.core.database_errors import is_unique_violation
from app.core.db import after_commit, utcnow
from app.core.errors import Conflict, NotFound, Unavailable
from app.definitions.registry import find_definition
from app.executions import repository, transitions
from app.executions.models import (
    ExecutionStatus,
)
from app.executions.queue import (
    abort_execution_job,
    enqueue_execution,
    queue_reachable,
)
from app.executions.repository import ExecutionRow, StoredUpload
from app.executions.start_request import CopyFiles, Retry

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


async def _earlier_request(
    session: AsyncSession, user_id: int, idempotency_key: str, digest: str
) -> ExecutionRow | None:
    """The execution a live Idempotency-Key already started, or None (an expired key is freed)."""
    earlier = await repository.find_by_idempotency_key(session, user_id, idempotency_key)
    if earlier is None:
        return None
    if earlier["started_at"] <= utcnow() - IDEMPOTENCY_WINDOW:
        await repository.release_idempotency_key(session, earlier["id"])
        return None
    if earlier["request_sha256"] != digest:
        raise Conflict(
            f"Idempotency-Key {idempotency_key!r} was used in the last 24 hours for a different "
            f"request (execution {earlier['id']}); send a new key for a new request."
        )
    return await repository.get_execution(session, earlier["id"])


async def check_queue(queue: ArqRedis, settings: Settings) -> None:
    """503, nothing stored, when the queue is down and the settings say to refuse then."""
    if settings.reject_when_queue_down and not await queue_reachable(queue):
        raise Unavailable(QUEUE_UNAVAILABLE, headers={"Retry-After": "5"})


@dataclass(frozen=True)
class Started:
    execution: ExecutionRow
    # True when an earlier request with the same Idempotency-Key started it.
    repeated: bool = False


async def _store_execution(
    session: AsyncSession,
    settings: Settings,
    *,
    user: User,
    agent: Agent,
    execution_key: str,
    validated_input: dict[str, Any],
    uploads: Sequence[Upload],
    idempotency_key: str | None,
    digest: str,
    extra_values: dict[str, Any],
    copy_files: CopyFiles | None,
) -> ExecutionRow:
    """Store the execution, its locked conversation and files; written files are removed
    again should the rows not be stored. ``copy_files``: a retry's, the earlier execution's
    files linked into the new conversation."""
    now = utcnow()
    definition = find_definition(agent.agent_type, execution_key)
    values = {
        **extra_values,
        "definition_version": None if definition is None else definition.version,
        "agent_id": agent.id,
        "user_id": user.id,
        "dataset_id": agent.dataset_id,
        "execution_key": execution_key,
        "input": validated_input,
        "idempotency_key": idempotency_key,
        "request_sha256": digest,
    }
    if copy_files is not None:
        conversation_id = await repository.insert_conversation(
            session, agent_id=agent.id, user_id=user.id, now=now
        )
        linked: list[str] = []
        try:
            await copy_files(conversation_id, now, linked)
            execution_id, _ = await repository.insert_execution(
                session, conversation_id=conversation_id, values=values, now=now
            )
        except BaseException:
            remove_stored(settings.media_root, linked)
            raise
        found = await repository.get_execution(session, execution_id)
        assert found is not None
        return found
    if not uploads:
        execution_id, conversation_id = await repository.insert_execution(
            session, conversation_id=None, values=values, now=now
        )
        # Everything else is known: spare the read on the hot path.
        return _new_execution_row(execution_id, conversation_id, values, now)
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
        execution_id, _ = await repository.insert_execution(
            session, conversation_id=conversation_id, values=values, now=now
        )
    except BaseException:
        remove_stored(settings.media_root, [file.storage_key for file in stored])
        raise
    # The files' ids are the database's: read them back (rare, and costly anyway).
    found = await repository.get_execution(session, execution_id)
    assert found is not None
    return found


def _new_execution_row(
    execution_id: int, conversation_id: int, values: dict[str, Any], now: datetime
) -> ExecutionRow:
    return {
        "id": execution_id,
        "agent_id": values["agent_id"],
        "user_id": values["user_id"],
        "execution_key": values["execution_key"],
        "definition_version": values["definition_version"],
        "conversation_id": conversation_id,
        "status": ExecutionStatus.PENDING,
        "input": values["input"],
        "result": None,
        "failure_code": None,
        "failure_explanation": None,
        "started_at": now,
        "finished_at": None,
        "usage": None,
        "limits": values["limits"],
        "retry_of_id": values["retry_of_id"],
        "resume_from_id": values["resume_from_id"],
        "batch_id": None,
        "files": [],
        "retried_by": [],
    }


async def start_execution(
    session: AsyncSession,
    queue: ArqRedis,
    settings: Settings,
    *,
    user: User,
    agent: Agent,
    execution_key: str,
    validated_input: dict[str, Any],
    uploads: Sequence[Upload] = (),
    idempotency_key: str | None = None,
    limits: Limits | None = None,
    retry: Retry | None = None,
) -> Started:
    """Store the execution, then enqueue it; or answer the one an Idempotency-Key started.

    Enqueued once the request's transaction is committed (``after_commit``), so a fast
    worker always finds the row. With Redis down the execution is still stored (the
    reconciler enqueues it later), unless the settings say to refuse it. A user past a daily
    quota is refused (429), a repeat of an earlier request excepted.
    """
    stored_limits = None if limits is None else limits.stored()
    asked: dict[str, Any] = {}
    if stored_limits is not None:
        asked["limits"] = stored_limits
    if retry is not None:
        asked["retry_of"] = retry.of["id"]
        asked["resume"] = retry.resume
    digest = request_sha256(agent, execution_key, validated_input, uploads, asked)
    if idempotency_key is not None:
        earlier = await _earlier_request(session, user.id, idempotency_key, digest)
        if earlier is not None:
            return Started(earlier, repeated=True)
    await check_quotas(session, user)
    await check_queue(queue, settings)
    store = functools.partial(
        _store_execution,
        session,
        settings,
        user=user,
        agent=agent,
        execution_key=execution_key,
        validated_input=validated_input,
        uploads=uploads,
        idempotency_key=idempotency_key,
        digest=digest,
        extra_values={
            "limits": stored_limits,
            "retry_of_id": None if retry is None else retry.of["id"],
            "resume_from_id": retry.of["id"] if retry is not None and retry.resume else None,
        },
        copy_files=None if retry is None else retry.copy_files(session, settings),
    )
    if idempotency_key is None:
        execution = await store()
    else:
        try:
            # A savepoint: should a concurrent request with the same key store first, the
            # request's transaction goes on to read what it stored.
            async with session.begin_nested():
                execution = await store()
        except IntegrityError as exc:
            if not is_unique_violation(exc):
                raise
            earlier = await _earlier_request(session, user.id, idempotency_key, digest)
            if earlier is None:
                raise
            return Started(earlier, repeated=True)
    execution_id = execution["id"]
    after_commit(session, lambda: enqueue_execution(queue, execution_id))
    return Started(execution)


async def get_visible_execution(
    session: AsyncSession, user: User, execution_id: int
) -> ExecutionRow:
    """The execution with its files, if ``user`` owns it or is an admin; else 404."""
    execution = await repository.get_execution(session, execution_id)
    if execution is None or not repository.is_visible_to(user, execution):
        raise NotFound("Execution not found.")
    return execution


@dataclass(frozen=True)
class Cancellation:
    execution: ExecutionRow
    # True when the execution is failed/cancelled already; False when its worker was asked to
    # stop and will record the outcome.
    done: bool


async def cancel_execution(
    session: AsyncSession, queue: ArqRedis, settings: Settings, user: User, execution_id: int
) -> Cancellation:
    """Cancel an execution of ``user`` (any, for admins): ``failed`` with code ``cancelled``.

    A pending one fails at once. A running one is marked ``cancel_requested_at`` and its arq
    job aborted once the request is committed; its worker records the failure. Each step is a
    conditional UPDATE, so a worker moving the execution at the same moment cannot be
    overwritten.

    Where the rest of a cancellation happens: the abort is ``queue.abort_execution_job``; arq
    cancels the run's task (``allow_abort_jobs`` in workers/process/startup.py) and
    workers/run/jobs.py records it through workers/run/outcome.py (``record_cancellation``).
    Should the abort be lost, the heartbeat (``transitions.beat`` returns the flag,
    workers/run/heartbeat.py cancels the task), the conclusion (``transitions``: a requested
    cancellation wins over the outcome) and a restarted attempt (workers/run/claim.py) each find
    ``cancel_requested_at``. The explanation is ``models.cancelled_explanation``.
    """
    await get_visible_execution(session, user, execution_id)
    failed_now = await transitions.cancel_pending(session, execution_id, user.username)
    if not failed_now:
        await transitions.request_cancellation(session, execution_id, user.username)
    execution = await repository.get_execution(session, execution_id)
    assert execution is not None  # executions are never deleted while their agent lives
    if failed_now:
        return Cancellation(execution, done=True)
    if execution["status"] != ExecutionStatus.IN_PROGRESS:
        raise Conflict("Execution already finished.")
    # Asked now or by an earlier request: abort again (once the request is committed, so the
    # worker finds cancel_requested_at), in case the first abort was lost.
    after_commit(session, lambda: abort_execution_job(queue, settings, execution_id))
    return Cancellation(execution, done=False)
