"""An execution's input as stored: validated once when the execution starts, read back by the
worker through ``read_stored_input``.

``StoredInput`` is the definition's ``Input`` validated and dumped in JSON mode (defaults
filled): what the row holds and the run is built from. Only ``validated_input`` (called by
app.executions.start) makes one, so a value of this type has passed the definition's model and
its ``check_input``. The worker rebuilds the model from it with ``read_stored_input``; checks a
definition makes only at start (``ExecutionDefinition.check_input``, such as compiling a
schema) are not made again there, so a row stored before such a check existed reaches the
definition's ``prepare``, which ends it with the definition's own failure code.
"""

from typing import TYPE_CHECKING, Any, NewType

from pydantic import BaseModel

if TYPE_CHECKING:
    from app.definitions.base import ExecutionDefinition

StoredInput = NewType("StoredInput", dict[str, Any])


class InputRefused(ValueError):
    """Raised by ``ExecutionDefinition.check_input``: ``field`` of the input is refused, and why
    (the start answers 400 with ``{"input": {field: message}}``)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def validated_input(definition: "ExecutionDefinition", raw: Any) -> StoredInput:
    """``raw`` validated by the definition's ``Input`` and ``check_input``, dumped once in JSON
    mode. Raises pydantic's ValidationError or InputRefused."""
    model = definition.Input.model_validate(raw)
    definition.check_input(model)
    return StoredInput(model.model_dump(mode="json"))


def read_stored_input(definition: "ExecutionDefinition", stored: StoredInput) -> BaseModel:
    """The ``Input`` of a stored execution, as its run sees it (``check_input`` not made again)."""
    return definition.Input.model_validate(stored)
