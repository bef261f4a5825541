from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.budgets.limits import Limits
from app.budgets.usage import ExecutionUsage
from app.conversations.schemas import FileOut
from app.core.schemas import Timestamp
from app.core.tracing import trace_id_of
from app.executions.models import ExecutionStatus
from app.executions.queue import job_id_for
from app.executions.rows import ExecutionRow

EXAMPLE_INPUT: dict[str, Any] = {
    "additional_instructions": "Focus on products missing a description.",
    "skus": ["SKU-001", "SKU-002"],
}


class StartExecutionRequest(BaseModel):
    """The JSON body (documentation: the router reads it). Other fields are ignored."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [{"execution_key": "catalog-enrichment", "input": EXAMPLE_INPUT}]
        },
    )

    execution_key: str = Field(
        description="One of the keys the agent's execution definitions list."
    )
    input: Any = Field(
        default_factory=dict,
        description="Validated against the definition's `input_schema`; a JSON-encoded "
        "string is parsed first.",
    )
    limits: Limits | None = Field(
        default=None,
        description="Usage limits of this execution; the agent's apply too, the stricter of "
        "each winning. A run past one ends `failed` with `budget_exceeded`.",
    )


class StartExecutionForm(BaseModel):
    """The multipart form: `input` is a JSON-encoded string, files come as `files[]`."""

    execution_key: str
    input: str = Field(default="{}", description="JSON-encoded input object.")
    limits: str | None = Field(
        default=None, description="JSON-encoded `limits` object, as in a JSON start body."
    )
    files: list[bytes] = Field(
        default=[],
        alias="files[]",
        json_schema_extra={"items": {"type": "string", "format": "binary"}},
        description="Files for the agent to read (.txt .md .csv .json .pdf .png .jpg .jpeg .webp)."
        " `files` is accepted as well.",
    )


class ExecutionOut(BaseModel):
    id: int = Field(examples=[42])
    agent: int = Field(examples=[7])
    execution_key: str = Field(examples=["catalog-enrichment"])
    conversation: int = Field(examples=[198])
    status: ExecutionStatus
    input: dict[str, Any] = Field(examples=[EXAMPLE_INPUT])
    result: Any = Field(
        description="The validated output when finished; null otherwise.",
        examples=[{"SKU-001": "Product updated successfully"}],
    )
    failure_code: str | None = Field(
        description="runtime_error, max_retries_exceeded, validation_failed, unknown, "
        "worker_lost, cancelled, budget_exceeded, or a code of the execution definition's own.",
        examples=[None],
    )
    failure_explanation: str | None = Field(examples=[None])
    celery_task_id: str | None = Field(
        description="The job id on the queue (named so for compatibility).",
        examples=["execution:42"],
    )
    started_at: Timestamp
    finished_at: Timestamp | None
    duration_seconds: float | None = Field(examples=[16.554571])
    files: list[FileOut]
    # Beyond the contract's fields, so after them.
    definition_version: str | None = Field(
        description="The version of the execution type that ran it, recorded at submit "
        "(null for executions stored before versions were recorded).",
        examples=["1.0.0"],
    )
    usage: ExecutionUsage = Field(
        description="What the run used: zeros until it ends (stored then, also when it failed)."
    )
    limits: Limits | None = Field(
        description="The start request's own usage limits (the agent's apply too); null: none."
    )
    retry_of: int | None = Field(
        description="The execution this one retries (POST .../retry/); null: none.",
        examples=[None],
    )
    resume_from: int | None = Field(
        description="The execution whose last good step this one continues from (a retry "
        'with `{"resume": true}`); null: none.',
        examples=[None],
    )
    retried_by: list[int] = Field(
        description="The executions started as retries of this one, oldest first.",
        examples=[[]],
    )
    batch_id: int | None = Field(
        default=None,
        description="The batch this execution is an item of (null: started alone).",
        examples=[None],
    )
    schedule_id: int | None = Field(
        default=None,
        description="The schedule that started this execution at one of its ticks (null: "
        "none, or the schedule was deleted).",
        examples=[None],
    )
    trace_id: str | None = Field(
        default=None,
        description="The OpenTelemetry trace id of the request that started it (32 hex "
        "digits), whose trace holds the run too; null when tracing was off.",
        examples=[None],
    )


class ExecutionPage(BaseModel):
    count: int = Field(description="Executions matching the filters.")
    next: str | None = Field(description="URL of the next page, null on the last.")
    previous: str | None = Field(description="URL of the previous page, null on the first.")
    results: list[ExecutionOut]


def execution_out(execution: ExecutionRow, root_path: str) -> ExecutionOut:
    """One execution as the contract shows it (a row of app.executions.repository, with files)."""
    finished_at = execution.finished_at
    return ExecutionOut(
        id=execution.id,
        agent=execution.agent_id,
        execution_key=execution.execution_key,
        conversation=execution.conversation_id,
        status=execution.status,
        input=execution.input,
        result=execution.result,
        failure_code=execution.failure_code,
        failure_explanation=execution.failure_explanation,
        # The job id is derived from the execution's id (no column holds it since 0024).
        celery_task_id=job_id_for(execution.id),
        started_at=execution.started_at,
        finished_at=finished_at,
        duration_seconds=(
            None if finished_at is None else (finished_at - execution.started_at).total_seconds()
        ),
        files=[FileOut.of(**file, root_path=root_path) for file in execution.files],
        definition_version=execution.definition_version,
        usage=ExecutionUsage.of(execution.usage),
        limits=None if execution.limits is None else Limits.model_validate(execution.limits),
        retry_of=execution.retry_of_id,
        resume_from=execution.resume_from_id,
        retried_by=execution.retried_by,
        batch_id=execution.batch_id,
        schedule_id=execution.schedule_id,
        trace_id=trace_id_of(execution.traceparent),
    )
