"""Ids as clients write them in paths and filters.

Rows are numbered by PostgreSQL ``serial`` columns (int32, from 1). An id no such column can
hold (2³¹ and beyond, or a thousand digits) names no row, like any other id that does not
exist: it is read as ``NO_SUCH_ID`` so that the route answers as it does for one (401 without
a token, then 404 or an empty list), instead of failing to encode the value for PostgreSQL.
"""

from typing import Annotated, Any

from pydantic import BeforeValidator

INT32_MAX = 2**31 - 1
# Serial ids start at 1: no row has this one.
NO_SUCH_ID = 0
# More digits than any int32 has, with a sign: not worth converting (and past 4,300 digits
# Python refuses to).
_MAX_ID_DIGITS = 11


def _storable_or_no_such_id(value: Any) -> Any:
    if isinstance(value, str):
        digits = value.removeprefix("-")
        if not (digits.isascii() and digits.isdigit()):
            return value  # not an integer: the int validator says so (400)
        if len(digits) > _MAX_ID_DIGITS:
            return NO_SUCH_ID
        value = int(value)
    if isinstance(value, int) and not -INT32_MAX - 1 <= value <= INT32_MAX:
        return NO_SUCH_ID
    return value


RowId = Annotated[int, BeforeValidator(_storable_or_no_such_id)]


def is_row_id(text: str) -> bool:
    """Whether ``text``, as a person typed it in a form, is an id a row can have: ASCII digits
    an int32 column holds (``int()`` of a thousand digits is refused or slow; of ``"٣"`` it is
    3)."""
    return (
        text.isascii() and text.isdigit() and len(text) <= _MAX_ID_DIGITS and int(text) <= INT32_MAX
    )
