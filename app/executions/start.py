"""Starting an execution: the one operation every front door calls.

A door (REST JSON and multipart, the console's form, A2A, MCP, retry; batches and schedules
next) translates its wire format into a ``StartExecution`` and calls ``start_execution``;
what it gets back is ``Started`` (the execution, and whether an earlier request with the same
Idempotency-Key started it), what it may get raised is a DomainError (400 with the field
errors every door gives alike, 409, 413, 429, 503), which it turns into its own answer.

The operation is three public steps, for a door that needs them apart (a batch validates
every item before it stores any):

- ``validate_start(command, settings) -> ValidStart``: pure. The Idempotency-Key, the
  execution key (the definition looked up once), the input (checked for depth and finite
  numbers, validated by the definition and dumped once: that dump is checked for size,
  digested for idempotency and stored), the limits, the number of files. Raises Invalid.
- ``read_files(valid, settings, extractor) -> list[Upload]``: the uploads checked by content
  and their text extracted, before anything is written.
- ``store_start(session, queue, settings, valid, uploads) -> Started``: answers an earlier
  request with the same Idempotency-Key, or checks the user's quotas and the queue, inserts
  the execution (its conversation and files) and registers its enqueue after the commit of
  the caller's transaction (``after_commit``).

A door that stores many starts at once (a batch) validates each with ``validate_start`` (the
same field errors), then builds its rows with ``start_store.execution_values`` and
``start_store.request_digest`` and enqueues each after commit; a door that starts on a
user's behalf later (a schedule) keeps the command's values and calls ``start_execution``;
should it be refused, ``store_refused_start`` records a failed execution that says why.
"""

from collections.abc import Sequence
from typing import Any

from arq.connections import ArqRedis
from pydantic import ValidationError
from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from app.agents.models import Agent
from app.budgets.limits import parse_limits
from app.conversations.extraction_process import TextExtractor
from app.conversations.storage import Upload
from app.core.config import Settings
from app.core.errors import Invalid, field_errors
from app.core.json_input import check_json
from app.definitions.base import ExecutionDefinition
from app.definitions.inputs import InputRefused, StoredInput, validated_input
from app.definitions.registry import definitions_for, find_definition
from app.executions.start_command import Origin, Started, StartExecution, ValidStart
from app.executions.start_request import (
    NO_FILE_UPLOAD,
    check_idempotency_key,
    field_error,
    input_too_large,
    read_uploads,
)
from app.executions.start_store import store_refused_start, store_start

__all__ = [
    "Origin",
    "StartExecution",
    "Started",
    "ValidStart",
    "definition_of",
    "read_files",
    "start_execution",
    "store_refused_start",
    "store_start",
    "validate_start",
]


def definition_of(agent: Agent, raw_key: Any) -> ExecutionDefinition:
    """The definition a start's ``execution_key`` names, else a 400 naming the agent's keys."""
    if not isinstance(raw_key, str) or not raw_key:
        known = ", ".join(d.key for d in definitions_for(agent.agent_type)) or "none"
        message = (
            "This field is required."
            if raw_key is None or raw_key == ""
            else ("Not a valid string.")
        )
        detail = f"execution_key: {message} Available for this agent: {known}."
        raise field_error("execution_key", message, detail)
    definition = find_definition(agent.agent_type, raw_key)
    if definition is None:
        known = ", ".join(d.key for d in definitions_for(agent.agent_type)) or "none"
        raise Invalid(
            f"Unknown execution_key {raw_key!r} for this agent "
            f"(agent type {agent.agent_type!r}). Available: {known}."
        )
    return definition


def _input(definition: ExecutionDefinition, raw_input: Any, settings: Settings) -> StoredInput:
    """The input validated and dumped once. Refused first when it nests deeper than the limit
    or holds a non-finite number (which the dump would turn into null); then when its JSON is
    over the size limit."""
    if not isinstance(raw_input, dict):
        raise Invalid({"input": ["Expected a JSON object."]})
    check_json(raw_input, settings.max_json_depth, "input")
    try:
        stored = validated_input(definition, raw_input)
    except ValidationError as exc:
        raise Invalid({"input": field_errors(exc.errors())}) from None
    except InputRefused as exc:
        raise Invalid({"input": {exc.field: exc.message}}) from None
    size = len(to_json(stored))
    if size > settings.max_input_bytes:
        raise input_too_large(size, settings)
    return stored


def _check_file_count(agent: Agent, files: Sequence[UploadFile], settings: Settings) -> None:
    if not files:
        return
    if not agent.file_upload:
        raise field_error("files", "This agent does not support file uploads.", NO_FILE_UPLOAD)
    if len(files) > settings.max_upload_files:
        raise field_error("files", f"At most {settings.max_upload_files} files per execution.")


def validate_start(command: StartExecution, settings: Settings) -> ValidStart:
    """Everything about ``command`` that needs no database, in the order a client reads the
    errors: Idempotency-Key, execution key, input, limits, files. Raises Invalid (400) or
    PayloadTooLarge (413) with the same body whatever the door."""
    if command.idempotency_key is not None:
        check_idempotency_key(command.idempotency_key)
    definition = definition_of(command.agent, command.execution_key)
    if command.retry is None:
        stored = _input(definition, command.raw_input, settings)
    else:
        # The retried execution's input as stored: validated when that one started, and kept
        # as it is (a definition's later defaults are not added to it).
        stored = StoredInput(command.retry.of.input)
    limits = parse_limits(command.limits)
    _check_file_count(command.agent, command.files, settings)
    return ValidStart(
        user=command.user,
        agent=command.agent,
        origin=command.origin,
        definition=definition,
        input=stored,
        limits=limits,
        idempotency_key=command.idempotency_key,
        retry=command.retry,
        files=command.files,
        schedule_id=command.schedule_id,
    )


async def read_files(
    valid: ValidStart, settings: Settings, extractor: TextExtractor | None
) -> list[Upload]:
    """The start's uploads checked by content, their text extracted (no connection held)."""
    if not valid.files:
        return []
    if extractor is None:
        raise AssertionError("a start with files needs a text extractor")
    return await read_uploads(valid.files, settings, extractor, valid.user)


async def start_execution(
    session: AsyncSession,
    queue: ArqRedis,
    settings: Settings,
    command: StartExecution,
    extractor: TextExtractor | None = None,
) -> Started:
    """The whole start: ``validate_start``, ``read_files``, ``store_start``.

    With files, the session's transaction (which so far only read) is closed before their
    text is extracted, which may take seconds: no pooled connection waits for it; the next
    statement begins another, which the session's owner commits.
    """
    valid = validate_start(command, settings)
    if valid.files:
        await session.close()
    uploads = await read_files(valid, settings, extractor)
    return await store_start(session, queue, settings, valid, uploads)
