"""Query-parameter helpers shared by several endpoints."""

from typing import Annotated

from fastapi import Query
from pydantic import BeforeValidator
from starlette.requests import Request

# An empty value (`?agent_id=`) is no filter, as in Enthusiast's list views (`if agent_id:`).
EMPTY_IS_NONE = BeforeValidator(lambda value: None if value == "" else value)


def previous_page_url(request: Request, number: int) -> str | None:
    """The link to page ``number - 1``, as DRF writes it: page 1 without a ``page`` parameter."""
    if number == 1:
        return None
    if number == 2:
        return str(request.url.remove_query_params("page"))
    return str(request.url.include_query_params(page=number - 1))


# The query parameter of the doors that take access away (`?cancel_running=true`).
CancelRunning = Annotated[
    bool,
    Query(
        description=(
            "Also cancel the user's running executions (as a single cancel does); by default "
            "they finish."
        )
    ),
]
