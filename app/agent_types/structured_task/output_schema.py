"""A client's ``output_schema``, checked and compiled so that it cannot hurt other tenants.

The schema comes from a client and is applied, on a worker shared by every tenant, to model
output. Three ways it could stall that worker are closed here, at submit (a 400 naming the
field) and again when the worker prepares the run (rows stored before these checks):

- **References are local only.** ``$ref`` / ``$dynamicRef`` / ``$recursiveRef`` must be ``#``
  or a JSON pointer ``#/…``; ``$id`` may only name the document itself (at the top). Nothing is
  ever retrieved: the compiled validator's retriever refuses every URI (``jsonschema`` used to
  fetch ``http://`` and ``file://`` references itself, synchronously, without a time limit).
- **Patterns run in linear time.** ``pattern`` and ``patternProperties`` are compiled by
  ``jsonschema-rs`` with ``RegexOptions``: Rust's ``regex`` engine (RE2 semantics, no
  backtracking). Measured on ``^(a+)+$`` against ``a…a!``: Python's ``re`` (what
  ``jsonschema`` uses) held the event loop 1.9 s for 24 characters, 6.4 s for 26, 43 s for 28
  (minutes past 30, days past 40); here 0.02 ms for 41 characters, 14 ms for a million. The
  answer is judged, not abandoned: the model is told it does not match, as for any mismatch.
  Lookaround and backreferences need backtracking: a schema using them is refused at submit,
  as is any pattern the engine cannot compile (the usual ECMA-262 classes work).
- **Bounded size.** The schema may nest at most ``MAX_SCHEMA_DEPTH`` JSON levels, and its
  ``$ref``s may expand it to at most ``MAX_EXPANDED_VALUES`` JSON values and
  ``MAX_EXPANDED_PATTERNS`` patterns (a schema whose definitions each refer twice to the next
  one is small but doubles the work at each level).

``jsonschema-rs`` holds the GIL while it validates, so a thread would not keep the event loop
free: the bound on its time comes from these limits and the linear regex engine, not from
running it elsewhere. Formats are not asserted (annotations only, as the 2020-12 default).
"""

import itertools
from collections.abc import Iterator
from typing import Any, NoReturn

import jsonschema_rs
from pydantic_core import to_json

MAX_SCHEMA_DEPTH = 64
MAX_EXPANDED_VALUES = 20_000
# Each string of an answer is matched against every pattern that applies to it: 1500 patterns
# over a 0.5 MB answer took 1.6 s of the event loop; 200 took 0.3 s.
MAX_EXPANDED_PATTERNS = 200
REFERENCE_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")


class UnsafeSchema(ValueError):
    """The schema is invalid or refused; the message, read after "output_schema ", says why."""


def _refuse_retrieval(uri: str) -> NoReturn:
    raise UnsafeSchema(f"refers to {uri!r}: only local references are allowed, nothing is fetched")


def _location(path: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _nodes(schema: Any) -> Iterator[tuple[Any, tuple[Any, ...], int]]:
    """Every JSON value of ``schema`` with its path and depth, without recursion."""
    stack: list[tuple[Any, tuple[Any, ...], int]] = [(schema, (), 1)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_SCHEMA_DEPTH:
            raise UnsafeSchema(f"nests more than {MAX_SCHEMA_DEPTH} levels deep")
        yield node, path, depth
        if isinstance(node, dict):
            stack.extend((v, (*path, k), depth + 1) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, (*path, i), depth + 1) for i, v in enumerate(node))


def check_depth(schema: Any) -> None:
    """``UnsafeSchema`` if ``schema`` nests deeper than ``MAX_SCHEMA_DEPTH``."""
    for _ in _nodes(schema):
        pass


def _check_references(schema: Any) -> None:
    # A key is a keyword only where its value has the keyword's type: a property named "$ref"
    # maps to a schema (an object), a reference to a string.
    for node, path, _ in _nodes(schema):
        if not isinstance(node, dict):
            continue
        for keyword in REFERENCE_KEYWORDS:
            target = node.get(keyword)
            if isinstance(target, str) and not (target == "#" or target.startswith("#/")):
                raise UnsafeSchema(
                    f"has {keyword} {target!r} at {_location(path)}: only local references "
                    "('#' or '#/…') are allowed, nothing is fetched"
                )
        if path and isinstance(node.get("$id"), str):
            raise UnsafeSchema(f"has $id at {_location(path)}: only the top may have one")


def _pointed(root: Any, pointer: str) -> Any:
    """What a local reference points at, None if nothing (the validator then says so)."""
    node = root
    for token in pointer.removeprefix("#").split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node


def _patterns_in(node: dict[str, Any]) -> int:
    count = int(isinstance(node.get("pattern"), str))
    pattern_properties = node.get("patternProperties")
    return count + (len(pattern_properties) if isinstance(pattern_properties, dict) else 0)


def _check_expansion(schema: Any) -> None:
    """Count the JSON values and the patterns the schema would have with each reference
    replaced by its target (a reference back into itself counts once: recursion consumes the
    answer's depth)."""
    counted: dict[int, tuple[int, int]] = {}
    expanding: set[int] = set()

    def count(node: Any) -> tuple[int, int]:
        key = id(node)
        if key in counted:
            return counted[key]
        if key in expanding:
            return 1, 0
        expanding.add(key)
        values, patterns = 1, 0
        children: list[Any] = []
        if isinstance(node, dict):
            patterns = _patterns_in(node)
            children = list(node.values())
            children += [
                _pointed(schema, node[k])
                for k in REFERENCE_KEYWORDS
                if isinstance(node.get(k), str)
            ]
        elif isinstance(node, list):
            children = node
        for child in children:
            child_values, child_patterns = count(child)
            values, patterns = values + child_values, patterns + child_patterns
            if values > MAX_EXPANDED_VALUES:
                raise UnsafeSchema(
                    f"expands to more than {MAX_EXPANDED_VALUES} JSON values through its $refs"
                )
            if patterns > MAX_EXPANDED_PATTERNS:
                raise UnsafeSchema(
                    f"has more than {MAX_EXPANDED_PATTERNS} patterns (counting those its $refs "
                    "repeat)"
                )
        expanding.discard(key)
        counted[key] = values, patterns
        return values, patterns

    try:
        count(schema)
    except RecursionError:
        raise UnsafeSchema("chains too many definitions through its $refs") from None


def compile_schema(schema: dict[str, Any]) -> jsonschema_rs.Validator:
    """The validator of ``schema``, or ``UnsafeSchema`` saying what is wrong with it."""
    check_depth(schema)
    _check_references(schema)
    _check_expansion(schema)
    try:
        return jsonschema_rs.validator_for(
            schema,
            retriever=_refuse_retrieval,
            pattern_options=jsonschema_rs.RegexOptions(),
            validate_formats=False,
        )
    except jsonschema_rs.ValidationError as exc:
        where = f" at {_location(exc.instance_path)}" if exc.instance_path else ""
        hint = (
            " (patterns are matched without backtracking: lookaround and backreferences are "
            "not supported)"
            if '"regex"' in exc.message
            else ""
        )
        raise UnsafeSchema(f"is not a valid JSON schema{where}: {exc.message}{hint}") from None
    except ValueError as exc:
        # jsonschema-rs refuses what it cannot convert (nesting past its own limit, say).
        raise UnsafeSchema(f"is not a usable JSON schema: {exc}") from None


# The schemas checked last, by their JSON: the items of a batch usually share one schema,
# which is then compiled once, not once an item (a compile costs ~0.3 ms).
_CHECKED: dict[bytes, str | None] = {}
CHECKED_KEPT = 16


def schema_problem(schema: dict[str, Any]) -> str | None:
    """What is wrong with ``schema`` (``UnsafeSchema``'s message), or None: ``compile_schema``
    remembered for the last ``CHECKED_KEPT`` schemas seen."""
    key = to_json(schema)
    if key in _CHECKED:
        return _CHECKED[key]
    try:
        compile_schema(schema)
        problem = None
    except UnsafeSchema as exc:
        problem = str(exc)
    if len(_CHECKED) >= CHECKED_KEPT:
        _CHECKED.pop(next(iter(_CHECKED)))
    _CHECKED[key] = problem
    return problem


def errors_of(validator: jsonschema_rs.Validator, value: Any, limit: int) -> list[str]:
    """Up to ``limit`` errors of ``value`` as ``at $.path: message``: a valid value stops at
    ``is_valid``, and an invalid one is not searched for all its errors (a schema can have
    exponentially many)."""
    if validator.is_valid(value):
        return []
    return [
        f"at {_location(error.instance_path)}: {error.message}"
        for error in itertools.islice(validator.iter_errors(value), limit)
    ]
