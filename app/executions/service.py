"""Starting, reading and listing agentic executions."""

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from arq.connections import ArqRedis
from pydantic import ValidationError
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from app.agents.models import Agent
from app.auth.models import User
from app.conversations.file_types import UnsupportedFile, detect_content_type
from app.conversations.models import Conversation, ConversationFile
from app.conversations.storage import Upload, remove_stored, write_upload
from app.core.config import Settings
from app.core.errors import Invalid, NotFound, PayloadTooLarge, field_errors
from app.definitions.registry import definitions_for, find_definition
from app.executions.models import AgenticExecution, ExecutionStatus
from app.executions.queue import enqueue_execution, job_id_for


def parse_form_input(raw: str | None) -> Any:
    """The multipart ``input`` field: a JSON-encoded object (missing means ``{}``)."""
    if raw is None or raw.strip() == "":
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise Invalid({"input": [f"Invalid JSON: {exc}"]}) from None


def validate_input(agent: Agent, execution_key: str, raw_input: Any) -> dict[str, Any]:
    """The input validated by the definition's model and dumped in JSON mode, defaults filled."""
    definition = find_definition(agent.agent_type, execution_key)
    if definition is None:
        known = ", ".join(d.key for d in definitions_for(agent.agent_type)) or "none"
        raise Invalid(
            f"Unknown execution_key {execution_key!r} for this agent "
            f"(agent type {agent.agent_type!r}). Available: {known}."
        )
    if not isinstance(raw_input, dict):
        raise Invalid({"input": ["Expected a JSON object."]})
    try:
        validated = definition.Input.model_validate(raw_input)
    except ValidationError as exc:
        raise Invalid({"input": field_errors(exc.errors())}) from None
    return validated.model_dump(mode="json")


async def read_uploads(
    agent: Agent, files: Sequence[UploadFile], settings: Settings
) -> list[Upload]:
    """Check count, size and type of the uploads, by content, before anything is written."""
    if not files:
        return []
    if not agent.file_upload:
        raise Invalid({"files": ["This agent does not accept file uploads."]})
    if len(files) > settings.max_upload_files:
        raise Invalid({"files": [f"At most {settings.max_upload_files} files per execution."]})
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
            raise Invalid({"files": [str(exc)]}) from None
        uploads.append(Upload(filename=filename, content_type=content_type, data=data))
    return uploads


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
) -> AgenticExecution:
    """Store the execution, its locked conversation and files in one transaction, then enqueue.

    Enqueueing only after the commit means a fast worker always finds the row.
    """
    conversation = Conversation(agent_id=agent.id, user_id=user.id, locked=True)
    session.add(conversation)
    await session.flush()
    stored: list[str] = []
    try:
        for upload in uploads:
            key = await asyncio.to_thread(
                write_upload, settings.media_root, conversation.id, upload
            )
            stored.append(key)
            session.add(
                ConversationFile(
                    conversation_id=conversation.id,
                    filename=key.rsplit("/", 1)[-1],
                    content_type=upload.content_type,
                    size=len(upload.data),
                    sha256=upload.sha256,
                    storage_key=key,
                )
            )
        execution = AgenticExecution(
            agent_id=agent.id,
            user_id=user.id,
            execution_key=execution_key,
            conversation_id=conversation.id,
            status=ExecutionStatus.PENDING,
            input=validated_input,
        )
        session.add(execution)
        await session.flush()
        execution.job_id = job_id_for(execution.id)
        await session.commit()
    except BaseException:
        await session.rollback()
        remove_stored(settings.media_root, stored)
        raise
    await enqueue_execution(queue, execution.id)
    return execution


async def get_visible_execution(
    session: AsyncSession, user: User, execution_id: int
) -> AgenticExecution:
    execution = await session.get(AgenticExecution, execution_id)
    if execution is None or not (user.is_admin or execution.user_id == user.id):
        raise NotFound("Execution not found.")
    return execution


@dataclass(frozen=True)
class ExecutionFilters:
    agent_id: int | None = None
    status: ExecutionStatus | None = None
    dataset_id: int | None = None


def _visible_executions(user: User, filters: ExecutionFilters) -> Select[AgenticExecution]:
    query = select(AgenticExecution)
    if not user.is_admin:
        query = query.where(AgenticExecution.user_id == user.id)
    if filters.agent_id is not None:
        query = query.where(AgenticExecution.agent_id == filters.agent_id)
    if filters.status is not None:
        query = query.where(AgenticExecution.status == filters.status.value)
    if filters.dataset_id is not None:
        agents_of_dataset = select(Agent.id).where(Agent.dataset_id == filters.dataset_id)
        query = query.where(AgenticExecution.agent_id.in_(agents_of_dataset))
    return query


async def count_executions(session: AsyncSession, user: User, filters: ExecutionFilters) -> int:
    query = _visible_executions(user, filters).with_only_columns(func.count())
    return (await session.scalar(query.order_by(None))) or 0


async def list_executions(
    session: AsyncSession, user: User, filters: ExecutionFilters, *, offset: int, limit: int
) -> Sequence[AgenticExecution]:
    """Newest first: by started_at, then id, both descending."""
    query = (
        _visible_executions(user, filters)
        .order_by(AgenticExecution.started_at.desc(), AgenticExecution.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return (await session.scalars(query)).all()
