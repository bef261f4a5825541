"""An execution as an A2A task: its id is the execution's, its state the execution's status.

Shared by the A2A adapter (app.protocols.a2a) and the webhook sender (app.webhooks.dispatch:
a push notification config's deliveries carry the task), which do not import each other."""

from typing import Any

from a2a.types.a2a_pb2 import (
    Artifact,
    Message,
    Part,
    Role,
    StreamResponse,
    Task,
    TaskArtifactUpdateEvent,
    TaskState,
    TaskStatus,
    TaskStatusUpdateEvent,
)
from google.protobuf import json_format, struct_pb2  # type: ignore[import-untyped]

from app.executions.models import CANCELLED, ExecutionStatus
from app.executions.rows import ExecutionRow

JSON = "application/json"
RESULT_ARTIFACT_ID = "result"

_STATES = {
    ExecutionStatus.PENDING: TaskState.TASK_STATE_SUBMITTED,
    ExecutionStatus.IN_PROGRESS: TaskState.TASK_STATE_WORKING,
    ExecutionStatus.FINISHED: TaskState.TASK_STATE_COMPLETED,
    ExecutionStatus.FAILED: TaskState.TASK_STATE_FAILED,
}
# The task states a list may be filtered by, as execution statuses.
STATUSES = {state: status for status, state in _STATES.items()}


def data_part(value: Any) -> Part:
    return Part(data=json_format.ParseDict(value, struct_pb2.Value()), media_type=JSON)


def from_data_part(part: Part) -> Any:
    return json_format.MessageToDict(part.data)


def task_state(execution: ExecutionRow) -> TaskState:
    if execution.status == ExecutionStatus.FAILED and execution.failure_code == CANCELLED:
        return TaskState.TASK_STATE_CANCELED
    return _STATES[execution.status]


def _status(execution: ExecutionRow) -> TaskStatus:
    status = TaskStatus(state=task_state(execution))
    status.timestamp.FromDatetime(execution.finished_at or execution.started_at)
    if execution.status == ExecutionStatus.FAILED:
        code, explanation = execution.failure_code, execution.failure_explanation
        status.message.CopyFrom(
            Message(
                message_id=f"execution-{execution.id}-failure",
                task_id=str(execution.id),
                context_id=str(execution.conversation_id),
                role=Role.ROLE_AGENT,
                parts=[
                    Part(text=f"{code}: {explanation}"),
                    data_part({"failure_code": code, "failure_explanation": explanation}),
                ],
            )
        )
    return status


def result_artifact(execution: ExecutionRow) -> Artifact:
    return Artifact(
        artifact_id=RESULT_ARTIFACT_ID,
        name="result",
        parts=[data_part(execution.result)],
    )


def request_message(execution: ExecutionRow) -> Message:
    """The message that started the task, as its execution recorded it: the execution key and
    the validated input (defaults filled in)."""
    return Message(
        message_id=f"execution-{execution.id}-request",
        task_id=str(execution.id),
        context_id=str(execution.conversation_id),
        role=Role.ROLE_USER,
        parts=[data_part({"execution_key": execution.execution_key, "input": execution.input})],
    )


def task_of(
    execution: ExecutionRow, *, with_artifacts: bool = True, with_history: bool = False
) -> Task:
    """The execution as a task. Its context is its conversation (each execution has its own,
    holding its trace); its history, when asked for, the message that started it."""
    task = Task(
        id=str(execution.id),
        context_id=str(execution.conversation_id),
        status=_status(execution),
    )
    if with_artifacts and execution.status == ExecutionStatus.FINISHED:
        task.artifacts.append(result_artifact(execution))
    if with_history:
        task.history.append(request_message(execution))
    return task


def events_of(execution: ExecutionRow) -> list[TaskArtifactUpdateEvent | TaskStatusUpdateEvent]:
    """What a stream sends at a change of the execution's status: the result first, if any."""
    task_id, context_id = str(execution.id), str(execution.conversation_id)
    events: list[TaskArtifactUpdateEvent | TaskStatusUpdateEvent] = []
    if execution.status == ExecutionStatus.FINISHED:
        events.append(
            TaskArtifactUpdateEvent(
                task_id=task_id,
                context_id=context_id,
                artifact=result_artifact(execution),
                last_chunk=True,
            )
        )
    events.append(
        TaskStatusUpdateEvent(task_id=task_id, context_id=context_id, status=_status(execution))
    )
    return events


def push_notification(execution: ExecutionRow) -> dict[str, Any]:
    """What an A2A client's push notification receiver reads: a StreamResponse, the task."""
    body: dict[str, Any] = json_format.MessageToDict(StreamResponse(task=task_of(execution)))
    return body
