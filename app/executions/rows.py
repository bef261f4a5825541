"""An execution as read from the database: a typed, frozen row.

A frozen dataclass, not the ORM entity (``AgenticExecution``): the reads that make it are
SQLAlchemy Core statements, each one round trip that also aggregates the files and the retries
as JSON (and, when polled, authenticates the token in the same statement); an ORM entity would
need its identity map, relationship loads (more SELECTs) and change tracking for a row that is
only shown. The dataclass is built from the statement's mapping in one call (``of``), so the
hot paths keep their statements; frozen, since a view of it in another status
(``app.events.stream.execution_in_status``) or with its large fields left out is a copy
(``dataclasses.replace``), never a change of the row that was read.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.executions.models import ExecutionStatus


@dataclass(frozen=True, slots=True)
class ExecutionRow:
    """The columns the contract shows (``repository.SHOWN_COLUMNS``), the visible files of
    its conversation and the ids of its retries."""

    id: int
    agent_id: int
    user_id: int
    execution_key: str
    definition_version: str | None
    conversation_id: int
    status: ExecutionStatus
    input: Any
    result: Any
    failure_code: str | None
    failure_explanation: str | None
    started_at: datetime
    finished_at: datetime | None
    usage: dict[str, Any] | None
    limits: dict[str, Any] | None
    retry_of_id: int | None
    resume_from_id: int | None
    batch_id: int | None
    schedule_id: int | None
    # The start request's W3C trace context, when tracing was on (app/core/tracing.py).
    traceparent: str | None
    # Each {"id", "filename", "storage_key", "content_type"}, in upload order.
    files: Sequence[Mapping[str, Any]]
    # Oldest first.
    retried_by: Sequence[int]
    # A list's row: True when the statement left out a field over the list's size limit
    # (``app.executions.listing``); its value is then None.
    input_truncated: bool = False
    result_truncated: bool = False

    @classmethod
    def of(cls, row: Mapping[Any, Any]) -> "ExecutionRow":
        """The row of a statement selecting ``repository.EXECUTION_COLUMNS`` (by those names)."""
        return cls(
            id=row["id"],
            agent_id=row["agent_id"],
            user_id=row["user_id"],
            execution_key=row["execution_key"],
            definition_version=row["definition_version"],
            conversation_id=row["conversation_id"],
            status=ExecutionStatus(row["status"]),
            input=row["input"],
            result=row["result"],
            failure_code=row["failure_code"],
            failure_explanation=row["failure_explanation"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            usage=row["usage"],
            limits=row["limits"],
            retry_of_id=row["retry_of_id"],
            resume_from_id=row["resume_from_id"],
            batch_id=row["batch_id"],
            schedule_id=row["schedule_id"],
            traceparent=row["traceparent"],
            files=row["files"],
            retried_by=row["retried_by"],
            input_truncated=row.get("input_truncated", False),
            result_truncated=row.get("result_truncated", False),
        )

    @property
    def terminal(self) -> bool:
        return self.status.terminal


@dataclass(frozen=True, slots=True)
class KeyedRequest:
    """What an Idempotency-Key stored, an execution or a batch: the row's id, when it was made,
    and the digest of what its request asked (read by ``start_store.IdempotencyKeys``)."""

    id: int
    created_at: datetime
    request_sha256: str | None
