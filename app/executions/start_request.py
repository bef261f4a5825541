"""What a start request sends, checked before anything is stored: the execution key, the
input against its definition, the Idempotency-Key and the uploads (their text extracted);
and what a retry adds to one (``Retry``: the execution it retries, its files to link)."""

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from app.agents.models import Agent
from app.auth.models import User
from app.budgets.limits import Limits, parse_limits
from app.conversations.extraction_process import TextExtractor
from app.conversations.file_types import UnsupportedFile, detect_content_type
from app.conversations.storage import Upload, link_stored
from app.core.config import Settings
from app.core.errors import Conflict, Invalid, PayloadTooLarge, field_errors
from app.core.json_input import check_json, parse_json
from app.definitions.base import ExecutionDefinition
from app.definitions.registry import definitions_for, find_definition
from app.executions import repository
from app.executions.repository import ExecutionRow

IDEMPOTENCY_KEY_MAX_LENGTH = 255
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


def parse_form_limits(raw: Any, settings: Settings) -> Limits | None:
    """``limits`` of a multipart form: a JSON-encoded object, as ``input`` is."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str):
        raise Invalid({"limits": {"detail": "Expected a JSON-encoded object, got a file."}})
    try:
        parsed = parse_json(raw[: settings.max_input_bytes + 1], settings.max_json_depth)
    except ValueError as exc:
        raise Invalid({"limits": {"detail": str(exc)}}) from None
    return parse_limits(parsed)


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


def definition_of(agent: Agent, execution_key: str) -> ExecutionDefinition:
    """The agent's definition of ``execution_key``, else a 400 naming the keys it has."""
    definition = find_definition(agent.agent_type, execution_key)
    if definition is None:
        known = ", ".join(d.key for d in definitions_for(agent.agent_type)) or "none"
        raise Invalid(
            f"Unknown execution_key {execution_key!r} for this agent "
            f"(agent type {agent.agent_type!r}). Available: {known}."
        )
    return definition


def validate_input(
    agent: Agent, execution_key: str, raw_input: Any, settings: Settings
) -> dict[str, Any]:
    """The input validated by the definition's model and dumped in JSON mode, defaults filled.

    Refused first when it nests deeper than the limit or holds a non-finite number (which the
    dump would turn into null); then when its JSON is over the size limit.
    """
    definition = definition_of(agent, execution_key)
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


# Records the files of the retried execution under the new conversation (its id, the time),
# adding the storage key of each file linked on disk to the list as it goes (removed again by
# the caller should the execution not be stored).
CopyFiles = Callable[[int, datetime, list[str]], Awaitable[None]]


@dataclass(frozen=True)
class Retry:
    """A start request that retries ``of`` (its id and conversation)."""

    of: ExecutionRow
    resume: bool

    def copy_files(self, session: AsyncSession, settings: Settings) -> CopyFiles:
        async def copy(conversation_id: int, now: datetime, linked: list[str]) -> None:
            files = await repository.stored_files(session, self.of["conversation_id"])
            copies = []
            for file in files:
                try:
                    key = await asyncio.to_thread(
                        link_stored, settings.media_root, file.storage_key, conversation_id
                    )
                except FileNotFoundError:
                    raise Conflict(
                        f"The file {file.filename!r} of execution {self.of['id']} is no "
                        "longer stored: start a new execution with it instead."
                    ) from None
                linked.append(key)
                copies.append(dataclasses.replace(file, storage_key=key))
            if copies:
                await repository.insert_files(session, conversation_id, copies, now)

        return copy
