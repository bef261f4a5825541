"""``structured-task``: follow instructions and answer with JSON matching a given schema.

The schema is given to the model as the shape of its result tool and checked on every answer
(``output_schema``: what is refused and why, at submit and again here); the errors go back to
the model until it matches or the retries are exhausted. A schema that is not an object schema
(an array, a string, …) is wrapped as ``{"result": <schema>}`` for the model and unwrapped in
the stored result.
"""

import functools
import json
from dataclasses import dataclass
from typing import Any

import jsonschema_rs
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_ai import StructuredDict
from pydantic_ai.exceptions import UserError
from pydantic_ai.output import OutputSpec
from pydantic_core import PydanticCustomError, to_jsonable_python

from app.agent_types.structured_task.output_schema import (
    UnsafeSchema,
    check_depth,
    compile_schema,
    errors_of,
    schema_problem,
)
from app.definitions.base import FREE_OBJECT, ExecutionDefinition, files_paragraph
from app.definitions.run import STORED_INPUT, ExecutionRun
from app.definitions.validators import OK, ExecutionFailed, Retry, Verdict

MAX_REPORTED_ERRORS = 10
CACHED_SCHEMAS = 128
WRAPPER_KEY = "result"

INSTRUCTIONS = (
    "You carry out the user's instructions autonomously: nobody will answer questions. "
    "Use the tools if you need to read the uploaded files. Give your answer by calling the "
    "result tool with a value that matches the required JSON schema exactly. If the "
    "instructions cannot be carried out with the information available, call stop_execution "
    "with a one-sentence reason instead of guessing."
)


class StructuredTaskAgenticExecutionInput(BaseModel):
    """Input for the structured task agentic execution."""

    model_config = ConfigDict(extra="forbid")

    instructions: str = Field(min_length=1, description="What the agent should do.")
    output_schema: dict[str, Any] | None = Field(
        default=None, description="A JSON schema the result must validate against."
    )

    @field_validator("output_schema")
    @classmethod
    def _usable_schema(
        cls, schema: dict[str, Any] | None, info: ValidationInfo
    ) -> dict[str, Any] | None:
        # Checked again when the run is prepared (a stored row then fails with its own code).
        if schema is not None and info.context != STORED_INPUT:
            problem = schema_problem(schema)
            if problem is not None:
                raise PydanticCustomError(
                    "output_schema", "output_schema {reason}", {"reason": problem}
                )
        return schema


@dataclass(frozen=True)
class TaskState:
    schema_validator: jsonschema_rs.Validator | None
    output_type: OutputSpec[Any]
    # True when the model answers {"result": value} for a schema that is not an object.
    wrapped: bool = False


def _is_object_schema(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "object" or ("type" not in schema and "properties" in schema)


def _wrapped(schema: dict[str, Any]) -> dict[str, Any]:
    inner = {k: v for k, v in schema.items() if k not in ("$defs", "$schema")}
    wrapper: dict[str, Any] = {
        "type": "object",
        "properties": {WRAPPER_KEY: inner},
        "required": [WRAPPER_KEY],
        "additionalProperties": False,
    }
    if "$defs" in schema:
        # References point at "#/$defs/...": the definitions stay at the top.
        wrapper["$defs"] = schema["$defs"]
    return wrapper


def _refused(exc: UnsafeSchema) -> ExecutionFailed:
    # A row stored before the submit-time check existed, or written around it.
    return ExecutionFailed(f"output_schema {exc}", "invalid_output_schema")


def task_state(schema: dict[str, Any] | None) -> TaskState:
    if schema is None:
        return TaskState(schema_validator=None, output_type=FREE_OBJECT)
    try:
        # Before json.dumps, which a deep enough schema makes recurse past Python's limit.
        check_depth(schema)
    except UnsafeSchema as exc:
        raise _refused(exc) from None
    # Keyed by the schema's JSON as given (key order kept: it is the order the model sees).
    return _task_state_of(json.dumps(schema, ensure_ascii=False))


# Runs given the same output_schema (a client submitting the same task again and again) share
# one TaskState: checking a schema against its meta-schema and building its output type cost
# milliseconds of CPU each, and the worker reuses its Agent for the same output type.
@functools.lru_cache(maxsize=CACHED_SCHEMAS)
def _task_state_of(schema_json: str) -> TaskState:
    schema: dict[str, Any] = json.loads(schema_json)
    try:
        schema_validator = compile_schema(schema)
    except UnsafeSchema as exc:
        raise _refused(exc) from None
    wrapped = not _is_object_schema(schema)
    try:
        output_type: OutputSpec[Any] = StructuredDict(_wrapped(schema) if wrapped else schema)
    except UserError:
        # Recursive references: the model gets the schema in its prompt only; the validator
        # still checks every answer against it.
        output_type, wrapped = FREE_OBJECT, False
    return TaskState(schema_validator=schema_validator, output_type=output_type, wrapped=wrapped)


def input_of(run: ExecutionRun) -> StructuredTaskAgenticExecutionInput:
    if not isinstance(run.input, StructuredTaskAgenticExecutionInput):
        raise TypeError("structured-task runs take StructuredTaskAgenticExecutionInput")
    return run.input


def state_of(run: ExecutionRun) -> TaskState:
    if not isinstance(run.state, TaskState):
        raise TypeError("structured-task needs a TaskState")
    return run.state


def unwrapped(state: TaskState, output: Any) -> Any:
    value = to_jsonable_python(output)
    if state.wrapped and isinstance(value, dict):
        return value.get(WRAPPER_KEY)
    return value


def matches_output_schema(run: ExecutionRun, output: Any) -> Verdict:
    state = state_of(run)
    if state.schema_validator is None:
        return OK
    value = unwrapped(state, output)
    errors = errors_of(state.schema_validator, value, MAX_REPORTED_ERRORS + 1)
    if not errors:
        return OK
    shown = [f"- {error}" for error in errors[:MAX_REPORTED_ERRORS]]
    if len(errors) > MAX_REPORTED_ERRORS:
        shown.append("- … and more")
    return Retry("The result does not match output_schema. Errors:\n" + "\n".join(shown))


class StructuredTask(ExecutionDefinition):
    key = "structured-task"
    agent_type = "structured-task"
    name = "Structured Task"
    description = "Carry out free-form instructions and return a JSON result of a given shape."
    version = "1.0.0"
    Input = StructuredTaskAgenticExecutionInput
    # The result follows the request's own output_schema: free as far as the API knows.
    instructions = INSTRUCTIONS
    validators = (matches_output_schema,)
    extra_failure_codes = {"invalid_output_schema": "The output_schema given is not valid"}

    async def prepare(self, run: ExecutionRun) -> TaskState:
        return task_state(input_of(run).output_schema)

    async def user_prompt(self, run: ExecutionRun) -> str:
        given = input_of(run)
        parts = [f"Instructions:\n{given.instructions}"]
        schema = given.output_schema
        if schema is not None:
            shape = json.dumps(schema, indent=2, ensure_ascii=False)
            parts.append(f"The result must validate against this JSON schema:\n{shape}")
            if state_of(run).wrapped:
                parts.append(f'Give it as the "{WRAPPER_KEY}" field of the result tool.')
        else:
            parts.append("The result is a JSON object of your choice.")
        if run.files:
            parts.append(files_paragraph(run))
        return "\n\n".join(parts)

    def output_type(self, run: ExecutionRun) -> OutputSpec[Any]:
        return state_of(run).output_type

    def result_of(self, run: ExecutionRun, output: Any) -> Any:
        return unwrapped(state_of(run), output)
