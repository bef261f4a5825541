"""Starting, reading, listing and cancelling agentic executions."""

import asyncio
import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import asyncpg
from arq.connections import ArqRedis
from pydantic import ValidationError
from pydantic_core import to_json
from sqlalchemy import CursorResult, bindparam, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from app.agents.models import Agent
from app.auth.models import User
from app.conversations.extraction_process import TextExtractor
from app.conversations.file_types import UnsupportedFile, detect_content_type
from app.conversations.storage import Upload, remove_stored, write_upload
from app.core import sql
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import Conflict, Invalid, NotFound, PayloadTooLarge, Unavailable, field_errors
from app.core.json_input import check_json, parse_json
from app.definitions.registry import definitions_for, find_definition
from app.executions import listing
from app.executions.listing import ExecutionRow
from app.executions.models import (
    CANCELLED,
    AgenticExecution,
    ExecutionStatus,
    cancelled_explanation,
)
from app.executions.queue import (
    abort_execution_job,
    enqueue_execution,
    queue_reachable,
)

# A repeat of a request with the same Idempotency-Key within this window answers the first
# execution; after it the key is free again.
IDEMPOTENCY_WINDOW = timedelta(hours=24)
IDEMPOTENCY_KEY_MAX_LENGTH = 255
QUEUE_UNAVAILABLE = "Job queue unavailable, try again shortly. Nothing was stored."
# Enthusiast's wording (agent/agentic_execution/views.py), which its clients may match.
NO_FILE_UPLOAD = "This agent does not support file uploads."


def input_too_large(size: int, settings: Settings) -> PayloadTooLarge:
    return PayloadTooLarge(
        {"input": [f"{size} bytes of JSON: the limit is {settings.max_input_bytes} bytes."]}
    )


def parse_form_input(raw: str | None, settings: Settings) -> Any:
    """``input`` as a JSON-encoded string (a multipart field, or a JSON body's string, which
    Enthusiast parses too); missing means ``{}``."""
    if raw is None or raw.strip() == "":
        return {}
    size = len(raw.encode())
    if size > settings.max_input_bytes:
        raise input_too_large(size, settings)
    try:
        return parse_json(raw, settings.max_json_depth)
    except ValueError as exc:
        raise Invalid({"input": [str(exc)]}) from None


def field_error(field: str, message: str, detail: str | None = None) -> Invalid:
    """A 400 in the shape Enthusiast's web client reads: ``detail`` (a string) and the field's
    messages as a list of strings."""
    return Invalid({"detail": detail or message, field: [message]})


def check_idempotency_key(key: str) -> None:
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH:
        raise field_error(
            "Idempotency-Key",
            f"Must be 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} characters long (got {len(key)}).",
        )


def execution_key_of(agent: Agent, raw: Any) -> str:
    """The ``execution_key`` of a start request: a non-empty string, else a 400 naming the keys."""
    if isinstance(raw, str) and raw:
        return raw
    known = ", ".join(d.key for d in definitions_for(agent.agent_type)) or "none"
    message = "This field is required." if raw is None or raw == "" else "Not a valid string."
    detail = f"execution_key: {message} Available for this agent: {known}."
    raise field_error("execution_key", message, detail)


def validate_input(
    agent: Agent, execution_key: str, raw_input: Any, settings: Settings
) -> dict[str, Any]:
    """The input validated by the definition's model and dumped in JSON mode, defaults filled.

    Refused first when it nests deeper than the limit or holds a non-finite number (which the
    dump would turn into null); then when its JSON is over the size limit.
    """
    definition = find_definition(agent.agent_type, execution_key)
    if definition is None:
        known = ", ".join(d.key for d in definitions_for(agent.agent_type)) or "none"
        raise Invalid(
            f"Unknown execution_key {execution_key!r} for this agent "
            f"(agent type {agent.agent_type!r}). Available: {known}."
        )
    if not isinstance(raw_input, dict):
        raise Invalid({"input": ["Expected a JSON object."]})
    check_json(raw_input, settings.max_json_depth, "input")
    try:
        validated = definition.Input.model_validate(raw_input)
    except ValidationError as exc:
        raise Invalid({"input": field_errors(exc.errors())}) from None
    dumped = validated.model_dump(mode="json")
    size = len(to_json(dumped))
    if size > settings.max_input_bytes:
        raise input_too_large(size, settings)
    return dumped


async def read_uploads(
    agent: Agent,
    files: Sequence[UploadFile],
    settings: Settings,
    extractor: TextExtractor,
    user: User,
) -> list[Upload]:
    """Check count, size and type of the uploads, by content, and extract their text, before
    anything is written (nor a database connection taken: a PDF may take seconds)."""
    if not files:
        return []
    if not agent.file_upload:
        raise field_error("files", "This agent does not support file uploads.", NO_FILE_UPLOAD)
    if len(files) > settings.max_upload_files:
        raise field_error("files", f"At most {settings.max_upload_files} files per execution.")
    uploads = []
    for file in files:
        filename = file.filename or "file"
        # Reading one byte past the limit tells "too large" without trusting a header.
        data = await file.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise PayloadTooLarge(
                f"{filename!r} is larger than the limit of {settings.max_upload_bytes} bytes."
            )
        try:
            content_type = detect_content_type(filename, data)
        except UnsupportedFile as exc:
            raise field_error("files", str(exc)) from None
        uploads.append(Upload(filename=filename, content_type=content_type, data=data))
    # Every file checked first: a refused request costs no extraction.
    return [
        dataclasses.replace(
            upload, extracted=await extractor.extract(upload.data, upload.content_type, user.id)
        )
        for upload in uploads
    ]


def request_sha256(
    agent: Agent, execution_key: str, validated_input: dict[str, Any], uploads: Sequence[Upload]
) -> str:
    """A digest of what a start request asks for, to tell a true repeat from a reused key.

    Taken over the validated input, so that ``{}`` and ``{"skus": null}`` are the same request.
    """
    request = {
        "agent": agent.id,
        "execution_key": execution_key,
        "input": validated_input,
        "files": [[upload.filename, upload.sha256] for upload in uploads],
    }
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


_executions = AgenticExecution.__table__
# The execution an Idempotency-Key started, read and (once expired) released by these.
_BY_IDEMPOTENCY_KEY = sql.compile_statement(
    select(_executions.c.id, _executions.c.started_at, _executions.c.request_sha256).where(
        _executions.c.user_id == bindparam("user_id"),
        _executions.c.idempotency_key == bindparam("idempotency_key"),
    )
)
_RELEASE_KEY = sql.compile_statement(
    update(AgenticExecution)
    .where(AgenticExecution.id == bindparam("id"))
    .values(idempotency_key=None)
)
# The new execution with its (locked) conversation, the conversation's files and a message
# for each file, in one statement: atomic without a transaction around it, and one round
# trip (app/core/sql.py).
# The conversation's id is given when files were written under it already, else drawn here.
_INSERT_EXECUTION = sql.compile_statement(
    text(
        """
WITH conversation AS (
    INSERT INTO conversations (id, agent_id, user_id, locked, created_at)
    VALUES (
        COALESCE(:conversation_id, nextval(pg_get_serial_sequence('conversations', 'id'))),
        :agent_id, :user_id, true, :now
    )
    RETURNING id
), file_messages AS (
    -- One "file" entry a file in the conversation, before the run's, as Enthusiast writes.
    INSERT INTO messages (conversation_id, role, content, payload, created_at)
    SELECT conversation.id, 'file', 'Uploaded ' || file.filename,
           jsonb_build_object('filename', file.filename, 'content_type', file.content_type),
           CAST(:now AS timestamptz)
    FROM conversation, unnest(CAST(:filenames AS varchar[]), CAST(:content_types AS varchar[]))
        WITH ORDINALITY AS file (filename, content_type, position)
    ORDER BY file.position
), files AS (
    INSERT INTO conversation_files
        (conversation_id, filename, content_type, size, sha256, storage_key, hidden, created_at,
         extracted_text, extraction_error)
    SELECT conversation.id, file.filename, file.content_type, file.size, file.sha256,
           file.storage_key, false, CAST(:now AS timestamptz), file.extracted_text,
           file.extraction_error
    FROM conversation, unnest(
        CAST(:filenames AS varchar[]), CAST(:content_types AS varchar[]),
        CAST(:sizes AS bigint[]), CAST(:sha256s AS varchar[]), CAST(:storage_keys AS varchar[]),
        CAST(:extracted_texts AS text[]), CAST(:extraction_errors AS text[])
    ) AS file (
        filename, content_type, size, sha256, storage_key, extracted_text, extraction_error
    )
)
INSERT INTO agentic_executions (
    agent_id, user_id, dataset_id, execution_key, conversation_id, status, input, attempts,
    started_at, idempotency_key, request_sha256, definition_version
)
VALUES (
    :agent_id, :user_id, :dataset_id, :execution_key, (SELECT id FROM conversation), 'pending',
    :input, 0, :now, :idempotency_key, :request_sha256, :definition_version
)
RETURNING id, conversation_id
"""
    )
)
_NEXT_CONVERSATION_ID = sql.compile_statement(
    text("SELECT nextval(pg_get_serial_sequence('conversations', 'id'))")
)


async def _earlier_request(
    session: AsyncSession, user_id: int, idempotency_key: str, digest: str
) -> ExecutionRow | None:
    """The execution a live Idempotency-Key already started, or None (an expired key is freed)."""
    earlier = await sql.fetchrow(
        session, _BY_IDEMPOTENCY_KEY, user_id=user_id, idempotency_key=idempotency_key
    )
    if earlier is None:
        return None
    if earlier["started_at"] <= utcnow() - IDEMPOTENCY_WINDOW:
        await sql.execute(session, _RELEASE_KEY, id=earlier["id"])
        return None
    if earlier["request_sha256"] != digest:
        raise Conflict(
            f"Idempotency-Key {idempotency_key!r} was used in the last 24 hours for a different "
            f"request (execution {earlier['id']}); send a new key for a new request."
        )
    return await listing.get_execution(session, earlier["id"])


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
) -> ExecutionRow:
    """Store the execution, its locked conversation and files; written files are removed
    again should the rows not be stored."""
    now = utcnow()
    definition = find_definition(agent.agent_type, execution_key)
    definition_version = None if definition is None else definition.version
    conversation_id: int | None = None
    stored: list[str] = []
    try:
        if uploads:
            # Files are stored under their conversation's id, before its row exists.
            conversation_id = await sql.fetchval(session, _NEXT_CONVERSATION_ID)
            for upload in uploads:
                key = await asyncio.to_thread(
                    write_upload, settings.media_root, conversation_id, upload
                )
                stored.append(key)
        row = await sql.fetchrow(
            session,
            _INSERT_EXECUTION,
            conversation_id=conversation_id,
            agent_id=agent.id,
            user_id=user.id,
            dataset_id=agent.dataset_id,
            execution_key=execution_key,
            input=json.dumps(validated_input),
            idempotency_key=idempotency_key,
            request_sha256=digest,
            definition_version=definition_version,
            now=now,
            filenames=[key.rsplit("/", 1)[-1] for key in stored],
            content_types=[upload.content_type for upload in uploads],
            sizes=[len(upload.data) for upload in uploads],
            sha256s=[upload.sha256 for upload in uploads],
            storage_keys=stored,
            extracted_texts=[upload.extracted.text for upload in uploads],
            extraction_errors=[upload.extracted.error for upload in uploads],
        )
    except BaseException:
        remove_stored(settings.media_root, stored)
        raise
    assert row is not None
    if uploads:
        # The files' ids are the database's: read them back (rare, and costly anyway).
        found = await listing.get_execution(session, row["id"])
        assert found is not None
        return found
    # Everything else is known: spare the read on the hot path.
    return {
        "id": row["id"],
        "agent_id": agent.id,
        "user_id": user.id,
        "execution_key": execution_key,
        "definition_version": definition_version,
        "conversation_id": row["conversation_id"],
        "status": ExecutionStatus.PENDING.value,
        "input": validated_input,
        "result": None,
        "failure_code": None,
        "failure_explanation": None,
        "started_at": now,
        "finished_at": None,
        "files": [],
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
) -> Started:
    """Store the execution, then enqueue it; or answer the one an Idempotency-Key started.

    Enqueueing only after the row is stored means a fast worker always finds it. With Redis
    down the execution is still stored (the reconciler enqueues it later), unless the
    settings say to refuse it.
    """
    digest = request_sha256(agent, execution_key, validated_input, uploads)
    if idempotency_key is not None:
        earlier = await _earlier_request(session, user.id, idempotency_key, digest)
        if earlier is not None:
            return Started(earlier, repeated=True)
    if settings.reject_when_queue_down and not await queue_reachable(queue):
        raise Unavailable(QUEUE_UNAVAILABLE, headers={"Retry-After": "5"})
    try:
        execution = await _store_execution(
            session,
            settings,
            user=user,
            agent=agent,
            execution_key=execution_key,
            validated_input=validated_input,
            uploads=uploads,
            idempotency_key=idempotency_key,
            digest=digest,
        )
    except asyncpg.UniqueViolationError:
        # A concurrent request with the same key stored first: answer its execution.
        if idempotency_key is None:
            raise
        earlier = await _earlier_request(session, user.id, idempotency_key, digest)
        if earlier is None:
            raise
        return Started(earlier, repeated=True)
    await enqueue_execution(queue, execution["id"])
    return Started(execution)


async def get_visible_execution(
    session: AsyncSession, user: User, execution_id: int
) -> ExecutionRow:
    """The execution with its files, if ``user`` owns it or is an admin; else 404."""
    execution = await listing.get_execution(session, execution_id)
    if execution is None or not (user.is_admin or execution["user_id"] == user.id):
        raise NotFound("Execution not found.")
    return execution


@dataclass(frozen=True)
class Cancellation:
    execution: ExecutionRow
    # True when the execution is failed/cancelled already; False when its worker was asked to
    # stop and will record the outcome.
    done: bool


async def _updated(session: AsyncSession, statement: Any) -> bool:
    result = await session.execute(statement, execution_options={"synchronize_session": False})
    return cast(CursorResult[Any], result).rowcount == 1


async def cancel_execution(
    session: AsyncSession, queue: ArqRedis, settings: Settings, user: User, execution_id: int
) -> Cancellation:
    """Cancel an execution of ``user`` (any, for admins): ``failed`` with code ``cancelled``.

    A pending one fails at once. A running one is marked ``cancel_requested_at`` and its arq
    job aborted; its worker records the failure. Each step is a conditional UPDATE, so a
    worker moving the execution at the same moment cannot be overwritten.
    """
    await get_visible_execution(session, user, execution_id)
    now = utcnow()
    requested = {"cancel_requested_at": now, "cancel_requested_by": user.username}
    failed_now = await _updated(
        session,
        update(AgenticExecution)
        .where(
            AgenticExecution.id == execution_id,
            AgenticExecution.status == ExecutionStatus.PENDING.value,
        )
        .values(
            status=ExecutionStatus.FAILED.value,
            failure_code=CANCELLED,
            failure_explanation=cancelled_explanation(user.username),
            finished_at=now,
            **requested,
        ),
    )
    if not failed_now:
        # A second request keeps the time and name of the first.
        await session.execute(
            update(AgenticExecution)
            .where(
                AgenticExecution.id == execution_id,
                AgenticExecution.status == ExecutionStatus.IN_PROGRESS.value,
                AgenticExecution.cancel_requested_at.is_(None),
            )
            .values(**requested),
            execution_options={"synchronize_session": False},
        )
    await session.commit()
    execution = await listing.get_execution(session, execution_id)
    assert execution is not None  # executions are never deleted while their agent lives
    if failed_now:
        return Cancellation(execution, done=True)
    if execution["status"] != ExecutionStatus.IN_PROGRESS:
        raise Conflict("Execution already finished.")
    # Asked now or by an earlier request: abort again, in case the first abort was lost.
    await abort_execution_job(queue, settings, execution_id)
    return Cancellation(execution, done=False)
