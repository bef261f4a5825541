"""What a start is, as the doors and the steps of app.executions.start pass it on."""

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from starlette.datastructures import UploadFile

from app.agents.models import Agent
from app.auth.models import User
from app.budgets.limits import Limits
from app.definitions.base import ExecutionDefinition
from app.definitions.inputs import StoredInput
from app.executions.rows import ExecutionRow
from app.executions.start_request import Retry


class Origin(StrEnum):
    """The door a start came in by."""

    REST = "rest"
    CONSOLE = "console"
    A2A = "a2a"
    MCP = "mcp"
    RETRY = "retry"
    BATCH = "batch"
    SCHEDULE = "schedule"


@dataclass(frozen=True)
class StartExecution:
    """What a door asks: the values as its client sent them, in Python (parsed from JSON)."""

    user: User
    agent: Agent
    origin: Origin
    # A non-empty string naming one of the agent's definitions, else 400.
    execution_key: Any
    # A JSON object for the definition's Input (a door whose wire sends it JSON-encoded in a
    # string parses it first: app.executions.start_request.parse_form_input). A retry's is
    # the retried execution's stored input, taken as it is.
    raw_input: Any
    # Uploads not yet read (multipart doors).
    files: Sequence[UploadFile] = ()
    # A JSON object of app.budgets.limits.Limits, or None.
    limits: Any = None
    idempotency_key: str | None = None
    # A retry's link to the execution it retries (app.executions.retry).
    retry: Retry | None = None
    # The schedule whose tick this start is (app.schedules), stored on the execution.
    schedule_id: int | None = None


@dataclass(frozen=True)
class ValidStart:
    """A start that passed ``validate_start``: everything stored is known but the uploads."""

    user: User
    agent: Agent
    origin: Origin
    definition: ExecutionDefinition
    input: StoredInput
    limits: Limits | None
    idempotency_key: str | None
    retry: Retry | None
    files: Sequence[UploadFile]
    schedule_id: int | None = None

    @property
    def execution_key(self) -> str:
        return self.definition.key


@dataclass(frozen=True)
class Started:
    execution: ExecutionRow
    # True when an earlier request with the same Idempotency-Key started it.
    repeated: bool = False
