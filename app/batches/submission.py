"""What a batch request sends, checked before anything is stored: every item validated
exactly as a single start's input is (``start_request.validate_input``), all or nothing.

Items come as a JSON array (a JSON body) or as the lines of a JSONL file (a multipart
upload, read a line at a time). A refused batch is a 400 naming each item in error by its
index, ``{"items": {"57": {"input": {...}}}}``, the first ``MAX_ITEM_ERRORS`` of them.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from app.agents.models import Agent
from app.core.config import Settings
from app.core.errors import DomainError, Invalid, PayloadTooLarge
from app.core.json_input import parse_json
from app.executions import start_request

MAX_ITEM_ERRORS = 50
# Room in an item for what is not its input (`{"input": ...}`, whitespace).
ITEM_ENVELOPE_BYTES = 1024


def too_many_items(settings: Settings) -> PayloadTooLarge:
    return PayloadTooLarge(
        {
            "detail": f"Too many items: the limit is {settings.max_batch_items} a batch "
            "(AGENTRUN_MAX_BATCH_ITEMS).",
            "items": [f"At most {settings.max_batch_items} items."],
        }
    )


class ItemError(Exception):
    """An item that is no ``{"input": ...}`` object, with the body naming what is wrong."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body)
        self.body = body


def _item_input(raw_item: Any, settings: Settings) -> Any:
    if isinstance(raw_item, ItemError):
        raise raw_item
    if not isinstance(raw_item, dict):
        raise ItemError({"detail": 'Expected an object, {"input": {...}}.'})
    raw_input = raw_item.get("input", {})
    # A JSON-encoded string is parsed, as a single start's `input` is.
    if isinstance(raw_input, str):
        return start_request.parse_form_input(raw_input, settings)
    return raw_input


@dataclass(frozen=True)
class ValidatedItems:
    inputs: list[dict[str, Any]]


def validate_items(
    agent: Agent, execution_key: str, raw_items: Iterable[Any], settings: Settings
) -> ValidatedItems:
    """Every item's input validated and dumped, in order; else 400 naming the items in error
    (validation stops at the ``MAX_ITEM_ERRORS``-th), or 413 past ``max_batch_items``."""
    start_request.definition_of(agent, execution_key)
    inputs: list[dict[str, Any]] = []
    errors: dict[str, Any] = {}
    count = 0
    for index, raw_item in enumerate(raw_items):
        count = index + 1
        if count > settings.max_batch_items:
            raise too_many_items(settings)
        if len(errors) >= MAX_ITEM_ERRORS:
            # Counted still (a batch over the limit is a 413 whatever its errors), not checked.
            continue
        try:
            raw_input = _item_input(raw_item, settings)
            inputs.append(start_request.validate_input(agent, execution_key, raw_input, settings))
        except ItemError as exc:
            errors[str(index)] = exc.body
        except DomainError as exc:
            # A 413 of one input (over max_input_bytes) is this item's error in the 400.
            errors[str(index)] = exc.body
    if errors:
        raise Invalid(
            {
                "detail": f"{len(errors)} item(s) are invalid"
                + (
                    f" (the first {MAX_ITEM_ERRORS} shown)"
                    if len(errors) >= MAX_ITEM_ERRORS
                    else ""
                )
                + ": nothing was stored.",
                "items": errors,
            }
        )
    if count == 0:
        raise Invalid({"items": ["At least one item."]})
    return ValidatedItems(inputs)


def json_items(raw: Any) -> list[Any]:
    """``items`` of a JSON body: a list, else a 400."""
    if not isinstance(raw, list):
        raise Invalid({"items": ['Expected a list of {"input": {...}} objects.']})
    return raw


def jsonl_items(file: IO[bytes], settings: Settings) -> Iterator[Any]:
    """The items of a JSONL file, a line at a time (blank lines skipped); a line that is not
    JSON, or longer than an input may be, comes as an ``ItemError`` in its place."""
    max_line = settings.max_input_bytes + ITEM_ENVELOPE_BYTES
    for line in iter(lambda: file.readline(max_line + 1), b""):
        if len(line) > max_line and not line.endswith(b"\n"):
            # The rest of the line is skipped, unread into memory.
            while (rest := file.readline(max_line + 1)) and not rest.endswith(b"\n"):
                pass
            yield ItemError({"input": [f"Line longer than the limit of {max_line} bytes."]})
            continue
        if not line.strip():
            continue
        try:
            yield parse_json(line, settings.max_json_depth)
        except ValueError as exc:
            yield ItemError({"detail": str(exc)})
