"""The pieces of a start request the doors share before app.executions.start takes it: a
JSON-encoded ``input``, the Idempotency-Key, the 400 in Enthusiast's shape, the uploads read
and their text extracted; and what a retry adds to one (``Retry``: the execution it retries,
its files to link)."""

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import params
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import UploadFile

from app.auth.models import User
from app.conversations.extraction_process import TextExtractor
from app.conversations.file_types import UnsupportedFile, detect_content_type
from app.conversations.storage import Upload, link_stored
from app.core.config import Settings
from app.core.errors import Conflict, Invalid, PayloadTooLarge
from app.core.json_input import parse_json
from app.executions import repository
from app.executions.rows import ExecutionRow

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


def parse_form_limits(raw: Any, settings: Settings) -> Any:
    """``limits`` of a multipart form: a JSON-encoded object, as ``input`` is (parsed here,
    validated by ``app.budgets.limits.parse_limits``, as a JSON body's)."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if not isinstance(raw, str):
        raise Invalid({"limits": {"detail": "Expected a JSON-encoded object, got a file."}})
    try:
        parsed = parse_json(raw[: settings.max_input_bytes + 1], settings.max_json_depth)
    except ValueError as exc:
        raise Invalid({"limits": {"detail": str(exc)}}) from None
    return parsed


def field_error(field: str, message: str, detail: str | None = None) -> Invalid:
    """A 400 in the shape Enthusiast's web client reads: ``detail`` (a string) and the field's
    messages as a list of strings."""
    return Invalid({"detail": detail or message, field: [message]})


def idempotency_key_header(description: str) -> params.Header:
    """The ``Idempotency-Key`` header of a door that starts work (``Annotated[str | None,
    idempotency_key_header(...)] = None``), described for its route. Its length is in the
    schema for the document only: ``check_idempotency_key`` checks it, to answer in the shape
    of the endpoint's other field errors."""
    return params.Header(
        alias="Idempotency-Key",
        json_schema_extra={"minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX_LENGTH},
        description=description,
    )


def check_idempotency_key(key: str) -> None:
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH:
        raise field_error(
            "Idempotency-Key",
            f"Must be 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} characters long (got {len(key)}).",
        )


async def read_uploads(
    files: Sequence[UploadFile],
    settings: Settings,
    extractor: TextExtractor,
    user: User,
) -> list[Upload]:
    """Check size and type of the uploads, by content, and extract their text, before
    anything is written (nor a database connection taken: a PDF may take seconds). Their
    number was checked by ``app.executions.start.validate_start``."""
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
            files = await repository.stored_files(session, self.of.conversation_id)
            copies = []
            for file in files:
                try:
                    key = await asyncio.to_thread(
                        link_stored, settings.media_root, file.storage_key, conversation_id
                    )
                except FileNotFoundError:
                    raise Conflict(
                        f"The file {file.filename!r} of execution {self.of.id} is no "
                        "longer stored: start a new execution with it instead."
                    ) from None
                linked.append(key)
                copies.append(dataclasses.replace(file, storage_key=key))
            if copies:
                await repository.insert_files(session, conversation_id, copies, now)

        return copy
