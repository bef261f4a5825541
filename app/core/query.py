"""Query-parameter helpers shared by the list endpoints."""

from pydantic import BeforeValidator

# An empty value (`?agent_id=`) is no filter, as in Enthusiast's list views (`if agent_id:`).
EMPTY_IS_NONE = BeforeValidator(lambda value: None if value == "" else value)
