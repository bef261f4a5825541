"""``structured-task``: follow instructions and answer with JSON matching a given schema."""

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.definitions.base import ExecutionDefinition


class StructuredTaskAgenticExecutionInput(BaseModel):
    """Input for the structured task agentic execution."""

    model_config = ConfigDict(extra="forbid")

    instructions: str = Field(min_length=1, description="What the agent should do.")
    output_schema: dict[str, Any] | None = Field(
        default=None, description="A JSON schema the result must validate against."
    )


class StructuredTask(ExecutionDefinition):
    key = "structured-task"
    agent_type = "structured-task"
    name = "Structured Task"
    description = "Carry out free-form instructions and return a JSON result of a given shape."
    Input = StructuredTaskAgenticExecutionInput
