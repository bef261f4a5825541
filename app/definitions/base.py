"""The plugin seam: what an execution definition declares.

A definition is registered under the entry-point group ``agentrun.execution_definitions``
(see ``app.definitions.registry``); the API serves its ``Input`` schema and validates request
bodies with it, the worker runs its agent loop.
"""

from typing import Any, ClassVar

from pydantic import BaseModel

BASE_FAILURE_CODES: dict[str, str] = {
    "runtime_error": "An unexpected error occurred during execution",
    "max_retries_exceeded": (
        "The LLM failed to pass validators after the maximum number of correction cycles"
    ),
    "validation_failed": "A validator rejected the response without allowing a retry",
    "unknown": "Execution reported failure but returned no structured failure code",
}


class ExecutionDefinition:
    """Subclass and set the class attributes; instantiate once and register the instance."""

    key: ClassVar[str]
    agent_type: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str | None] = None
    Input: ClassVar[type[BaseModel]]
    # None: the result is a free JSON object.
    Output: ClassVar[type[BaseModel] | None] = None
    max_retries: ClassVar[int] = 3
    # None: the service-wide AGENTRUN_EXECUTION_TIMEOUT_SECONDS applies.
    timeout_seconds: ClassVar[float | None] = None
    # This definition's own failure codes, beside BASE_FAILURE_CODES.
    extra_failure_codes: ClassVar[dict[str, str]] = {}

    @property
    def failure_codes(self) -> dict[str, str]:
        return {**BASE_FAILURE_CODES, **self.extra_failure_codes}

    def input_schema(self) -> dict[str, Any]:
        return self.Input.model_json_schema()
