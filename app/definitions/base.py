"""The plugin seam: what an execution definition declares.

A definition is registered under the entry-point group ``agentrun.execution_definitions``
(see ``app.definitions.registry``); the API serves its ``Input`` schema and validates request
bodies with it, the worker runs its agent loop (``workers.run.loop``) with the prompt, tools,
output type and validators declared here.
"""

import json
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import BaseModel
from pydantic_ai import StructuredDict, Tool
from pydantic_ai.output import OutputSpec
from pydantic_core import to_jsonable_python

from app.definitions.files import FILE_TOOLS
from app.definitions.package_version import package_version_of
from app.definitions.run import ExecutionRun
from app.definitions.validators import Validator

BASE_FAILURE_CODES: dict[str, str] = {
    "runtime_error": "An unexpected error occurred during execution",
    "max_retries_exceeded": (
        "The LLM failed to pass validators after the maximum number of correction cycles"
    ),
    "validation_failed": "A validator rejected the response without allowing a retry",
    "unknown": "Execution reported failure but returned no structured failure code",
    "worker_lost": "The worker running the execution stopped before it finished, too often",
    "cancelled": "Cancelled by a user before it finished",
    "budget_exceeded": (
        "The run reached a usage limit of its agent or its own (model requests, tokens or cost)"
    ),
}

# The result when a definition declares no ``Output``: any JSON object.
FREE_OBJECT: type[dict[str, Any]] = StructuredDict(
    {"type": "object", "additionalProperties": True},
    name="result",
    description="The result of the task, as a JSON object.",
)

DEFAULT_INSTRUCTIONS = (
    "You carry out one task for a user, autonomously: nobody will answer questions. "
    "Use the tools to gather what you need, then give your result by calling the result "
    "tool. If the task cannot be done with the information available, call stop_execution "
    "with a one-sentence reason instead of guessing."
)


class ExecutionDefinition:
    """Subclass and set the class attributes; instantiate once and register the instance.

    Override the hooks (``prepare``, ``system_prompt``, ``user_prompt``, ``tools``,
    ``output_type``, ``result_of``) where the defaults don't fit.
    """

    key: ClassVar[str]
    agent_type: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str | None] = None
    # Recorded on every execution as ``definition_version``. Bump it whenever ``Input``
    # changes incompatibly (tests/definitions/test_definition_versions.py holds the built-ins
    # to it).
    # Unset: the version of the distribution that ships the definition.
    version: ClassVar[str]
    Input: ClassVar[type[BaseModel]]
    # The result's model, served as ``output_schema`` and in the OpenAPI document.
    # None: the result is a free JSON object.
    Output: ClassVar[type[BaseModel] | None] = None
    instructions: ClassVar[str] = DEFAULT_INSTRUCTIONS
    # Run in order on every candidate output; see app.definitions.validators.
    validators: ClassVar[tuple[Validator, ...]] = ()
    max_retries: ClassVar[int] = 3
    # None: the service-wide AGENTRUN_EXECUTION_TIMEOUT_SECONDS applies.
    timeout_seconds: ClassVar[float | None] = None
    # A runaway loop ends as runtime_error (UsageLimitExceeded) past this many model requests
    # (a lower max_model_requests of the agent or the execution ends it as budget_exceeded).
    max_model_requests: ClassVar[int] = 50
    # This definition's own failure codes, beside BASE_FAILURE_CODES.
    extra_failure_codes: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "version" not in cls.__dict__:
            cls.version = package_version_of(cls.__module__)

    @property
    def failure_codes(self) -> dict[str, str]:
        return {**BASE_FAILURE_CODES, **self.extra_failure_codes}

    def input_schema(self) -> dict[str, Any]:
        return self.Input.model_json_schema()

    def check_input(self, validated: BaseModel) -> None:
        """Checks of a start's input beyond its model, made once when the execution starts
        (not when the worker reads the stored input back: ``app.definitions.inputs``).

        Raise ``app.definitions.inputs.InputRefused(field, message)`` to refuse it (400). A
        check the run relies on is made again in ``prepare``, for rows stored before it existed.
        """

    def output_schema(self) -> dict[str, Any] | None:
        """The JSON schema of ``result``, or None when it is a free JSON object."""
        return None if self.Output is None else self.Output.model_json_schema()

    async def prepare(self, run: ExecutionRun) -> Any:
        """Per-run state, stored as ``run.state`` before the prompt is built.

        May raise ``ExecutionFailed`` to end the run before any model call.
        """
        return None

    def system_prompt(self, run: ExecutionRun) -> str:
        return self.instructions

    async def user_prompt(self, run: ExecutionRun) -> str:
        """The task as the model first reads it: the validated input and the attached files."""
        parts = [
            "Input of this execution:",
            json.dumps(run.input.model_dump(mode="json"), indent=2, ensure_ascii=False),
        ]
        if run.files:
            parts.append(files_paragraph(run))
        return "\n\n".join(parts)

    def tools(self, run: ExecutionRun) -> Sequence[Tool[ExecutionRun]]:
        """The tools the model may call (``stop_execution`` is always added by the worker)."""
        return FILE_TOOLS if run.files else ()

    def output_type(self, run: ExecutionRun) -> OutputSpec[Any]:
        return self.Output if self.Output is not None else FREE_OBJECT

    def result_of(self, run: ExecutionRun, output: Any) -> Any:
        """The validated output as the JSON stored in the execution's ``result``."""
        if isinstance(output, BaseModel):
            return output.model_dump(mode="json")
        return to_jsonable_python(output)


def files_paragraph(run: ExecutionRun) -> str:
    listing = "\n".join(f"- {f.filename} ({f.content_type}, {f.size} bytes)" for f in run.files)
    return f"Files uploaded with this execution (read them with read_file):\n{listing}"
