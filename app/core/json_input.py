"""JSON documents clients send: parsed and checked before anything is validated or stored.

Three limits of the layers below are met here first, with a 400 that says what is wrong:

- depth: Python's ``json`` raises RecursionError past ~1,000 levels (a 500), pydantic-core
  refuses to serialise past ~255 (a stored product that no list could show), PostgreSQL past
  a few thousand (``stack depth limit exceeded``). The parser used here (pydantic-core's)
  stops at ``PARSER_DEPTH_LIMIT`` levels; ``max_depth`` (a setting) is checked after;
- non-finite numbers: ``NaN``, ``Infinity`` and ``1e400`` (parsed as infinity) are not JSON
  numbers; pydantic writes them as ``null``, so they would be stored as something else than
  what was sent;
- integers of thousands of digits, which Python refuses to convert (a ValueError here, a
  parse error).
"""

import json
import math
from typing import Any

from pydantic_core import from_json

from app.core.errors import Invalid

# pydantic-core's JSON parser refuses documents nested deeper than this.
PARSER_DEPTH_LIMIT = 200
# The default of the max_json_depth setting.
DEFAULT_MAX_JSON_DEPTH = 64

NOT_FINITE = "Not a finite number: NaN, Infinity and numbers beyond ±1.8e308 are refused."


def too_deep(max_depth: int) -> str:
    return f"Nested too deep: the limit is {max_depth} levels of arrays and objects."


def parse_json(raw: bytes | str, max_depth: int) -> Any:
    """The document, or ``ValueError`` with a message for the client (syntax or depth)."""
    try:
        return from_json(raw, allow_inf_nan=True)
    except ValueError as exc:
        if "recursion limit exceeded" in str(exc):
            raise ValueError(too_deep(max_depth)) from None
        raise ValueError(f"Invalid JSON: {exc}") from None


def parse_json_body(raw: bytes, max_depth: int) -> Any:
    """A request body; 400 ``{"detail": ...}`` when it is not JSON or nests too deep."""
    try:
        return from_json(raw, allow_inf_nan=True)
    except ValueError as exc:
        if "recursion limit exceeded" in str(exc):
            raise Invalid(f"JSON parse error: {too_deep(max_depth)}") from None
        raise Invalid(f"JSON parse error: the body is not valid JSON ({exc}).") from None


def json_problem(value: Any, max_depth: int) -> tuple[str, str] | None:
    """The first value that nests deeper than ``max_depth`` or is a non-finite number, as
    (dotted path, message); None when there is none. ``{}`` and ``[]`` are one level deep.

    Iterative, so that no depth makes it fail itself.
    """
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                return path, NOT_FINITE
        elif isinstance(item, dict | list):
            if depth + 1 > max_depth:
                return path, too_deep(max_depth)
            entries = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in entries:
                stack.append((child, depth + 1, f"{path}.{key}" if path else str(key)))
    return None


def check_json(value: Any, max_depth: int, field: str) -> None:
    """400 naming the offending value, as ``{field: {path: message}}`` (``{field: [message]}``
    when it is the value itself), unless ``value`` passes ``json_problem``."""
    problem = json_problem(value, max_depth)
    if problem is None:
        return
    path, message = problem
    if message != NOT_FINITE:
        # The whole value is refused, wherever its deepest branch is.
        raise Invalid({field: [message]})
    raise Invalid({field: {path: message} if path else [message]})


# What stands for a stored value too deep even to write as JSON text (past Python's recursion
# limit): PostgreSQL stores deeper documents than Python can encode.
TOO_DEEP_TO_SHOW = "(nested too deep to show)"


def within_depth(value: Any, max_depth: int) -> Any:
    """``value`` as it may be answered: unchanged when it nests at most ``max_depth`` levels,
    else each array or object past that depth replaced by its JSON text.

    For documents stored before the limits existed (or written past them by hand): a list of
    them must still answer (pydantic-core refuses to serialise past ~255 levels), and nothing
    of them is lost to the reader.
    """
    if json_problem(value, max_depth) is None:
        return value
    return _clipped(value, max_depth)


def _clipped(value: Any, levels_left: int) -> Any:
    # Recursion bounded by max_depth: the levels below are encoded, not walked.
    if not isinstance(value, dict | list):
        return value
    if levels_left == 0:
        try:
            return json.dumps(value, ensure_ascii=False, allow_nan=False)
        except (RecursionError, ValueError):
            return TOO_DEEP_TO_SHOW
    if isinstance(value, dict):
        return {key: _clipped(child, levels_left - 1) for key, child in value.items()}
    return [_clipped(child, levels_left - 1) for child in value]
