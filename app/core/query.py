"""Query-parameter helpers shared by several endpoints."""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Query
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


@dataclass(frozen=True)
class Paging:
    """A list's ``?page=`` (25 a page, newest first, as DRF pages them): what the query reads
    (``offset``, ``size``) and what the answer links to. One way for every paged list."""

    number: int
    size: int

    @classmethod
    def of(cls, raw: str | None, size: int) -> "Paging":
        """``?page=`` as asked; 404 "Invalid page." for one that is no page number."""
        return cls(page_number(raw, size), size)

    @property
    def offset(self) -> int:
        return (self.number - 1) * self.size

    def has_next(self, count: int) -> bool:
        return self.number * self.size < count

    def check_found(self, shown: int) -> None:
        """404 "Invalid page." for a page past the end (page 1 of nothing is an empty page)."""
        if self.number > 1 and not shown:
            raise NotFound("Invalid page.")

    def links(self, request: Request, count: int, shown: int) -> dict[str, Any]:
        """``count``, ``next``, ``previous`` of the page's answer (after ``check_found``)."""
        self.check_found(shown)
        following = request.url.include_query_params(page=self.number + 1)
        return {
            "count": count,
            "next": str(following) if self.has_next(count) else None,
            "previous": previous_page_url(request, self.number),
        }


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
