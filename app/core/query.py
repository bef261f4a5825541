"""Query-parameter helpers shared by the list endpoints."""

from pydantic import BeforeValidator
from starlette.requests import Request

from app.core.errors import NotFound
from app.core.ids import INT32_MAX

# An empty value (`?agent_id=`) is no filter, as in Enthusiast's list views (`if agent_id:`).
EMPTY_IS_NONE = BeforeValidator(lambda value: None if value == "" else value)


def previous_page_url(request: Request, number: int) -> str | None:
    """The link to page ``number - 1``, as DRF writes it: page 1 without a ``page`` parameter."""
    if number == 1:
        return None
    if number == 2:
        return str(request.url.remove_query_params("page"))
    return str(request.url.include_query_params(page=number - 1))


def page_number(raw: str | None, page_size: int) -> int:
    """``?page=`` as a number from 1 (absent: 1); 404 "Invalid page." for anything else, as DRF."""
    if raw is None:
        return 1
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses; and a page of
    # thousands of digits is refused by int() too. A page whose offset PostgreSQL cannot take
    # (int32) is past any list there will ever be.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(INT32_MAX)):
        raise NotFound("Invalid page.")
    number = int(raw)
    if number < 1 or number * page_size >= INT32_MAX:
        raise NotFound("Invalid page.")
    return number
