"""Column types for text a run produces, which PostgreSQL must never refuse for a NUL character.

PostgreSQL stores no NUL (U+0000) in text, varchar or jsonb (``\\u0000`` inside a jsonb string
is "unsupported Unicode escape sequence"). A model may put one anywhere: its answer, a tool's
arguments, a ``stop_execution`` reason, the result. Refused, the write fails, and a failed
outcome write used to leave the execution running until it was run again and lost. So the
columns the worker writes (the trace, the outcome) use these types, whose bind processors
replace each NUL with U+FFFD (the replacement character: the reader sees that something was
there). Being the columns' types, they apply to every statement that binds those columns
(their bind processors run whatever the statement): no writer has to remember.

What a client sends through the API keeps plain types: a NUL there is refused with a 400 that
says so (``app.core.errors``), which the client can act on.
"""

import re
from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

NUL = "\x00"
REPLACEMENT = "\ufffd"
# ``\u0000`` in JSON text, not preceded by an escaped backslash (``\\u0000`` is the six
# characters ``\u0000``, which PostgreSQL stores): group 1 keeps the backslash pairs before it.
_JSON_NUL = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


def without_nul(text: str) -> str:
    return text.replace(NUL, REPLACEMENT) if NUL in text else text


def json_without_nul(encoded: str) -> str:
    """JSON text with every NUL character of its strings (keys too) replaced."""
    if "\\u0000" not in encoded:
        return encoded
    return _JSON_NUL.sub(lambda match: match.group(1) + "\\ufffd", encoded)


class NulFreeText(TypeDecorator[str]):
    """``text``; a NUL in a value written is replaced by U+FFFD."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else without_nul(value)


class NulFreeString(TypeDecorator[str]):
    """``varchar(n)``; a NUL in a value written is replaced by U+FFFD (same length)."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        return None if value is None else without_nul(value)


class NulFreeJSONB(TypeDecorator[Any]):
    """``jsonb``; a NUL in any string of a value written (key or value) is replaced by U+FFFD.

    Cleaned in the JSON text the value is encoded to (one substring test when there is none),
    not by walking the value."""

    impl = JSONB
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Any:
        encode = self.impl_instance.dialect_impl(dialect).bind_processor(dialect)

        def process(value: Any) -> Any:
            encoded = value if encode is None else encode(value)
            return json_without_nul(encoded) if isinstance(encoded, str) else encoded

        return process
