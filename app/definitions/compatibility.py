"""Whether a definition's new ``Input`` schema still accepts every input the old one did.

A definition must bump its ``version`` when it does not: a client built against the old
schema (or a generated SDK) would be refused. Compatible: a new optional field, a looser or
unchanged field, documentation. Incompatible: a field removed where unknown fields are
refused, a new required field, a field's schema changed, unknown fields refused that were
accepted.
"""

from typing import Any

# Keywords that document a schema without changing what it accepts.
ANNOTATIONS = frozenset({"title", "description", "examples", "default", "deprecated"})


def _validation_only(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _validation_only(v) for k, v in schema.items() if k not in ANNOTATIONS}
    if isinstance(schema, list):
        return [_validation_only(item) for item in schema]
    return schema


def _definitions(schema: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = _validation_only(schema.get("$defs", {}))
    return found


def incompatibilities(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What in ``new`` refuses an input ``old`` accepted; empty when compatible."""
    problems: list[str] = []
    old_fields: dict[str, Any] = old.get("properties", {})
    new_fields: dict[str, Any] = new.get("properties", {})
    closed = new.get("additionalProperties") is False
    if closed and old.get("additionalProperties") is not False:
        problems.append("unknown fields are now refused")
    for name, old_field in old_fields.items():
        if name not in new_fields:
            if closed:
                problems.append(f"field {name!r} was removed")
        elif _validation_only(old_field) != _validation_only(new_fields[name]):
            problems.append(f"field {name!r} changed")
    for name in sorted(set(new.get("required", [])) - set(old.get("required", []))):
        problems.append(f"field {name!r} is now required")
    old_defs, new_defs = _definitions(old), _definitions(new)
    for name, definition in old_defs.items():
        if name in new_defs and new_defs[name] != definition:
            problems.append(f"definition {name!r} changed")
    return problems
