"""What the batch routes take and answer."""

import enum
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.budgets.limits import Limits
from app.core.schemas import Timestamp
from app.executions.models import ExecutionStatus
from app.executions.schemas import EXAMPLE_INPUT


class BatchStatus(enum.StrEnum):
    IN_PROGRESS = "in_progress"
    FINISHED = "finished"


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input: Any = Field(
        default_factory=dict,
        description="Validated as a single start's `input` is (a JSON-encoded string is "
        "parsed first).",
    )


class SubmitBatchRequest(BaseModel):
    """The JSON body (documentation: the router reads it). Other fields are ignored."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {"execution_key": "catalog-enrichment", "items": [{"input": EXAMPLE_INPUT}]}
            ]
        },
    )

    execution_key: str = Field(description="One of the keys the agent's definitions list.")
    items: list[BatchItem] = Field(
        min_length=1, description="One execution an item, in this order (`item` 0, 1, …)."
    )
    limits: Limits | None = Field(default=None, description="Usage limits of every item.")


class SubmitBatchForm(BaseModel):
    """The multipart form, for large batches: the items as a JSONL file."""

    execution_key: str
    items: bytes = Field(
        json_schema_extra={"format": "binary"},
        description='JSONL: one `{"input": {...}}` a line, blank lines skipped.',
    )
    limits: str | None = Field(default=None, description="JSON-encoded `limits` object.")


class BatchCounts(BaseModel):
    total: int = Field(examples=[3])
    pending: int = Field(examples=[1])
    in_progress: int = Field(examples=[1])
    finished: int = Field(examples=[1])
    failed: int = Field(examples=[0])


class BatchOut(BaseModel):
    id: int = Field(examples=[5])
    agent: int = Field(examples=[7])
    execution_key: str = Field(examples=["catalog-enrichment"])
    status: BatchStatus = Field(
        description="`in_progress` until every item has ended, then `finished` (whatever "
        "each item's outcome: see `counts`)."
    )
    counts: BatchCounts
    limits: Limits | None = Field(description="The usage limits every item was given.")
    created_at: Timestamp
    finished_at: Timestamp | None
    cancel_requested_at: Timestamp | None
    results: str = Field(description="URL of its results (NDJSON).")
    executions: str = Field(description="URL of its executions (the execution list).")

    @classmethod
    def of(cls, batch: Mapping[str, Any], *, results: str, executions: str) -> "BatchOut":
        """A batch as shown (a row of app.batches.repository, with its counts), with the URLs
        of its results and its executions."""
        counts = {status.value: int(batch[status.value]) for status in ExecutionStatus}
        return cls(
            id=batch["id"],
            agent=batch["agent_id"],
            execution_key=batch["execution_key"],
            status=BatchStatus.IN_PROGRESS
            if batch["finished_at"] is None
            else BatchStatus.FINISHED,
            counts=BatchCounts(total=batch["total"], **counts),
            limits=None if batch["limits"] is None else Limits.model_validate(batch["limits"]),
            created_at=batch["created_at"],
            finished_at=batch["finished_at"],
            cancel_requested_at=batch["cancel_requested_at"],
            results=results,
            executions=executions,
        )


class BatchPage(BaseModel):
    count: int = Field(description="Batches visible to the caller.")
    next: str | None
    previous: str | None
    results: list[BatchOut]


class ResultLine(BaseModel):
    """One line of the results (documentation: lines are written by app/batches/results.py)."""

    item: int = Field(description="The item's index in the submitted request.")
    execution_id: int
    status: ExecutionStatus
    result: Any = Field(description="The validated output when finished; null otherwise.")
    failure_code: str | None
    failure_explanation: str | None


# The fields of a result line, in order (the statement reads them; a line writes them).
RESULT_FIELDS = tuple(ResultLine.model_fields)
