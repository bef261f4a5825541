"""The statements on one execution: the insert of a new one, its reads (by id, and with the
token of the request polling it), the visibility rule. SQLAlchemy Core on the caller's
session, in its transaction (app/core/db.py); Core statements, no ORM objects
built for rows that are only shown: an execution comes back as an ``ExecutionRow``
(app.executions.rows). The list is read by ``app.executions.listing``.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Integer,
    Table,
    and_,
    bindparam,
    case,
    func,
    insert,
    literal_column,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import User
from app.auth.repository import TokenWith
from app.auth.service import Authenticated, authenticate_with
from app.conversations.models import Conversation, ConversationFile, Message
from app.executions.dispatch import NOTHING_WAITS
from app.executions.models import AgenticExecution, ExecutionStatus
from app.executions.rows import ExecutionRow, KeyedRequest

_executions = cast(Table, AgenticExecution.__table__)
_files = cast(Table, ConversationFile.__table__)
_conversations = cast(Table, Conversation.__table__)
_messages = cast(Table, Message.__table__)
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
    _executions.c.usage,
    _executions.c.limits,
    _executions.c.retry_of_id,
    _executions.c.resume_from_id,
    _executions.c.batch_id,
    _executions.c.schedule_id,
    _executions.c.traceparent,
)


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


def _retries_of_each_execution() -> ColumnElement[Any]:
    """The ids of the executions started as retries of the execution, as a JSON array (a
    partial index lookup: few executions are retried)."""
    retries = _executions.alias("retry")
    ids = (
        select(func.json_agg(postgresql.aggregate_order_by(retries.c.id, retries.c.id)))
        .where(retries.c.retry_of_id == _executions.c.id)
        .scalar_subquery()
    )
    return func.coalesce(ids, literal_column("'[]'::json"))


def visible_to(is_admin: ColumnElement[bool], user_id: ColumnElement[int]) -> ColumnElement[bool]:
    """Who may see an execution: its owner, and admins (the one statement of the rule)."""
    return or_(is_admin, _executions.c.user_id == user_id)


def is_visible_to(user: User, execution: ExecutionRow) -> bool:
    """``visible_to`` for an execution already read."""
    return user.is_admin or execution.user_id == user.id


# An ExecutionRow's columns, to select.
EXECUTION_COLUMNS = (
    *SHOWN_COLUMNS,
    _files_of_each_execution().label("files"),
    _retries_of_each_execution().label("retried_by"),
)
_ONE = select(*EXECUTION_COLUMNS).where(_executions.c.id == bindparam("execution_id"))


async def get_execution(session: AsyncSession, execution_id: int) -> ExecutionRow | None:
    """The execution with this id and its files, whoever may see it."""
    row = (await session.execute(_ONE, {"execution_id": execution_id})).mappings().first()
    return None if row is None else ExecutionRow.of(row)


async def execution_of_conversation(session: AsyncSession, conversation_id: int) -> int | None:
    """The id of the execution whose trace the conversation holds (an A2A task's context)."""
    query = select(_executions.c.id).where(_executions.c.conversation_id == conversation_id)
    return await session.scalar(query)


# Polling an execution authenticates the token and reads the execution in one round trip.
_TOKEN_AND_VISIBLE_EXECUTION = TokenWith.build(
    "execution_",
    _executions,
    {column.name: column for column in EXECUTION_COLUMNS},
    lambda token: and_(
        _executions.c.id == bindparam("execution_id", type_=Integer),
        visible_to(token.c.is_admin, token.c.id),
    ),
)


async def authenticate_for_execution(
    session: AsyncSession, raw_key: str, execution_id: int
) -> tuple[Authenticated | None, ExecutionRow | None]:
    """The live token with this key and its user (None if there is none), and the execution
    with its files if that user may see it (its owner, or an admin; None if not)."""
    authenticated, row = await authenticate_with(
        session, raw_key, _TOKEN_AND_VISIBLE_EXECUTION, execution_id=execution_id
    )
    return authenticated, None if row is None else ExecutionRow.of(row)


# Writing a new execution.


@dataclass(frozen=True)
class StoredUpload:
    """A file written under its conversation, to be recorded with the execution."""

    filename: str
    content_type: str
    size: int
    sha256: str
    storage_key: str
    # Its text, extracted at upload (app/conversations/extraction.py), or why not.
    extracted_text: str | None
    extraction_error: str | None


# Built once: SQLAlchemy keeps each statement's compiled form, found by a cache key it
# memoizes on the statement object. Core on the tables, not the ORM entities (whose INSERT
# goes through the ORM's bulk machinery), on the hot path.
_BY_IDEMPOTENCY_KEY = select(
    _executions.c.id, _executions.c.started_at, _executions.c.request_sha256
).where(
    _executions.c.user_id == bindparam("user_id"),
    _executions.c.idempotency_key == bindparam("idempotency_key"),
)
_RELEASE_IDEMPOTENCY_KEY = (
    update(_executions)
    .where(_executions.c.id == bindparam("execution_id"))
    .values(idempotency_key=None)
)
_NEW_CONVERSATION = {
    "agent_id": bindparam("agent_id"),
    "user_id": bindparam("user_id"),
    "locked": True,
    "created_at": bindparam("now"),
}
_INSERT_CONVERSATION = (
    insert(_conversations).values(_NEW_CONVERSATION).returning(_conversations.c.id)
)
_NEW_EXECUTION = {
    "agent_id": bindparam("agent_id"),
    "user_id": bindparam("user_id"),
    "dataset_id": bindparam("dataset_id"),
    "execution_key": bindparam("execution_key"),
    "status": ExecutionStatus.PENDING.value,
    "input": bindparam("input", type_=_executions.c.input.type),
    "attempts": 0,
    "started_at": bindparam("now"),
    "idempotency_key": bindparam("idempotency_key"),
    "request_sha256": bindparam("request_sha256"),
    "definition_version": bindparam("definition_version"),
    "limits": bindparam("limits", type_=_executions.c.limits.type),
    "retry_of_id": bindparam("retry_of_id", type_=Integer),
    "resume_from_id": bindparam("resume_from_id", type_=Integer),
    "priority": bindparam("priority", type_=_executions.c.priority.type),
    "traceparent": bindparam("traceparent"),
    "schedule_id": bindparam("schedule_id", type_=Integer),
}
# Released to the workers at insert (app/executions/dispatch.py): when nothing waits for the
# dispatcher, or always with fair share off (first in, first out).
# Typed: PostgreSQL cannot infer a parameter's type inside CASE.
_RELEASED_IF_NOTHING_WAITS = case(
    (NOTHING_WAITS, bindparam("now", type_=_executions.c.dispatched_at.type)), else_=null()
)
_INSERTED = (_executions.c.id, _executions.c.conversation_id, _executions.c.dispatched_at)


def _insert_statements(dispatched_at: Any) -> tuple[Any, Any]:
    """The insert in a conversation inserted already (its files written under its id), and
    the insert with its new locked conversation in one statement (the common case: one round
    trip)."""
    values = {**_NEW_EXECUTION, "dispatched_at": dispatched_at}
    in_conversation = (
        insert(_executions)
        .values({**values, "conversation_id": bindparam("conversation_id")})
        .returning(*_INSERTED)
    )
    conversation = _INSERT_CONVERSATION.cte("conversation")
    with_conversation = (
        insert(_executions)
        .values({**values, "conversation_id": select(conversation.c.id).scalar_subquery()})
        .returning(*_INSERTED)
        .add_cte(conversation)
    )
    return in_conversation, with_conversation


# Built once each (building a statement costs more CPU than running it).
_INSERTS = {
    True: _insert_statements(_RELEASED_IF_NOTHING_WAITS),
    False: _insert_statements(bindparam("now")),
}


async def find_by_idempotency_key(
    session: AsyncSession, user_id: int, idempotency_key: str
) -> KeyedRequest | None:
    """The execution the key started (its ``started_at`` as ``created_at``), if any."""
    values = {"user_id": user_id, "idempotency_key": idempotency_key}
    row = (await session.execute(_BY_IDEMPOTENCY_KEY, values)).first()
    return None if row is None else KeyedRequest(*row)


async def release_idempotency_key(session: AsyncSession, execution_id: int) -> None:
    await session.execute(_RELEASE_IDEMPOTENCY_KEY, {"execution_id": execution_id})


async def insert_conversation(
    session: AsyncSession, *, agent_id: int, user_id: int, now: datetime
) -> int:
    """A new locked conversation (an execution's), for files to be written under its id."""
    values = {"agent_id": agent_id, "user_id": user_id, "now": now}
    return int((await session.execute(_INSERT_CONVERSATION, values)).scalar_one())


async def insert_files(
    session: AsyncSession, conversation_id: int, uploads: Sequence[StoredUpload], now: datetime
) -> None:
    """The conversation's files, and a "file" message for each, in upload order, before the
    run's messages (as Enthusiast writes them)."""
    await session.execute(
        insert(_messages).values(
            [
                {
                    "conversation_id": conversation_id,
                    "role": "file",
                    "content": f"Uploaded {upload.filename}",
                    "payload": {"filename": upload.filename, "content_type": upload.content_type},
                    "created_at": now,
                }
                for upload in uploads
            ]
        )
    )
    await session.execute(
        insert(_files).values(
            [
                {
                    "conversation_id": conversation_id,
                    "filename": upload.filename,
                    "content_type": upload.content_type,
                    "size": upload.size,
                    "sha256": upload.sha256,
                    "storage_key": upload.storage_key,
                    "extracted_text": upload.extracted_text,
                    "extraction_error": upload.extraction_error,
                    "hidden": False,
                    "created_at": now,
                }
                for upload in uploads
            ]
        )
    )


async def stored_files(session: AsyncSession, conversation_id: int) -> list[StoredUpload]:
    """The visible files of a conversation as they are stored, in upload order (a retry
    records them again under its own conversation)."""
    rows = await session.execute(
        select(
            _files.c.filename,
            _files.c.content_type,
            _files.c.size,
            _files.c.sha256,
            _files.c.storage_key,
            _files.c.extracted_text,
            _files.c.extraction_error,
        )
        .where(_files.c.conversation_id == conversation_id, _files.c.hidden.is_(False))
        .order_by(_files.c.id)
    )
    return [StoredUpload(*row) for row in rows]


@dataclass(frozen=True)
class Inserted:
    id: int
    conversation_id: int
    # True: handed to the workers now (enqueue it); False: it waits for the dispatcher.
    released: bool


async def insert_execution(
    session: AsyncSession,
    *,
    conversation_id: int | None,
    values: Mapping[str, Any],
    now: datetime,
    fair_share: bool = True,
) -> Inserted:
    """A new pending execution (``values``: agent_id, user_id, dataset_id, execution_key,
    input, idempotency_key, request_sha256, definition_version, limits, retry_of_id,
    resume_from_id, priority, traceparent, schedule_id) in ``conversation_id``, or in a new locked
    conversation inserted by the same statement. Released at once unless executions wait for
    the dispatcher (or always, ``fair_share`` off)."""
    in_conversation, with_conversation = _INSERTS[fair_share]
    if conversation_id is None:
        statement = with_conversation
        parameters = {**values, "now": now}
    else:
        statement = in_conversation
        parameters = {**values, "now": now, "conversation_id": conversation_id}
    found = (await session.execute(statement, parameters)).one()
    return Inserted(int(found.id), int(found.conversation_id), found.dispatched_at is not None)
