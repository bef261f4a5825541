"""A JSON value valid against a JSON schema, built from the task's instructions: what the
offline demo model answers for a result it has no data for.

Covers what result schemas use (objects, arrays, strings with formats, numbers with bounds,
enums, const, references, anyOf/oneOf/allOf); a pattern it cannot satisfy is left to the
validators, which then fail the run with their message.
"""

import re
from typing import Any

MAX_DEPTH = 12
DEFAULT_ITEMS = 3
MAX_ITEMS = 20
FORMATS: dict[str, str] = {
    "date": "2026-01-01",
    "date-time": "2026-01-01T00:00:00Z",
    "time": "00:00:00Z",
    "email": "demo@example.com",
    "uri": "https://example.com/demo",
    "url": "https://example.com/demo",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
}
NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
_COUNT = re.compile(r"\b(\d{1,2}|" + "|".join(NUMBER_WORDS) + r")\b", re.IGNORECASE)


def count_asked_for(instructions: str) -> int | None:
    """The first small number the instructions name ("three uses" -> 3), if any."""
    match = _COUNT.search(instructions)
    if match is None:
        return None
    word = match.group(1).lower()
    return int(word) if word.isdigit() else NUMBER_WORDS[word]


def _subject(instructions: str) -> str:
    first_line = instructions.strip().splitlines()[0] if instructions.strip() else "the task"
    return first_line.rstrip(".?!")[:120]


class InstanceBuilder:
    def __init__(self, root: dict[str, Any], instructions: str, note: str) -> None:
        self.root = root
        self.instructions = instructions
        self.subject = _subject(instructions)
        self.note = note
        self.count = count_asked_for(instructions)
        self.noted = False

    def build(self) -> Any:
        return self.value(self.root, "result", 0)

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        reference = schema.get("$ref")
        if not isinstance(reference, str) or not reference.startswith("#/"):
            return schema
        target: Any = self.root
        for part in reference[2:].split("/"):
            target = target.get(part.replace("~1", "/").replace("~0", "~"), {})
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        return {**target, **rest} if isinstance(target, dict) else rest

    def value(self, schema: Any, name: str, depth: int) -> Any:
        if not isinstance(schema, dict) or depth > MAX_DEPTH:
            return None if depth > MAX_DEPTH else self.text(name, {})
        schema = self._resolve(schema)
        if "const" in schema:
            return schema["const"]
        if schema.get("enum"):
            return schema["enum"][0]
        if "default" in schema and schema["default"] is not None:
            return schema["default"]
        for combinator in ("oneOf", "anyOf"):
            options = schema.get(combinator)
            if isinstance(options, list) and options:
                chosen = next(
                    (o for o in options if not (isinstance(o, dict) and o.get("type") == "null")),
                    options[0],
                )
                return self.value(chosen, name, depth + 1)
        if isinstance(schema.get("allOf"), list):
            merged: dict[str, Any] = {}
            for part in schema["allOf"]:
                if isinstance(part, dict):
                    merged.update(self._resolve(part))
            merged.update({k: v for k, v in schema.items() if k != "allOf"})
            return self.value(merged, name, depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else None
        if kind == "object" or (kind is None and depth == 0):
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, name, depth)
        if kind in ("integer", "number"):
            return self.number(schema, kind)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self.text(name, schema)

    def object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        # Said once, where it cannot be missed: no model wrote this. In its own field where
        # the schema allows one, else in the first text.
        own_field = depth == 0 and schema.get("additionalProperties") is not False
        if own_field:
            self.noted = True
        properties = schema.get("properties", {})
        result = (
            {key: self.value(sub, key, depth + 1) for key, sub in properties.items()}
            if isinstance(properties, dict)
            else {}
        )
        for key in schema.get("required", []):
            result.setdefault(key, self.text(key, {}))
        if not result and schema.get("additionalProperties") not in (False, None):
            # A free object: the task and an answer of as many items as it asks for.
            result["task"] = self.subject
            result["answer"] = [
                self.text(f"item {n}", {}) for n in range(1, min(self.count or 1, MAX_ITEMS) + 1)
            ]
        if own_field:
            result["_demo_note"] = self.note
        return result

    def array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        low = int(schema.get("minItems", 0))
        high = int(schema.get("maxItems", MAX_ITEMS))
        wanted = min(max(self.count or DEFAULT_ITEMS, low, 1), high, MAX_ITEMS)
        items = schema.get("items", {})
        values = [self.value(items, f"{name} {n}", depth + 1) for n in range(1, wanted + 1)]
        if schema.get("uniqueItems"):
            values = list({repr(v): v for v in values}.values())
        return values

    def number(self, schema: dict[str, Any], kind: str) -> int | float:
        low = schema.get("minimum", schema.get("exclusiveMinimum", 0))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        value: float = low + 1 if "exclusiveMinimum" in schema else max(low, 1)
        if high is not None and value >= high:
            value = (low + high) / 2
        multiple = schema.get("multipleOf")
        if multiple:
            value = multiple * max(1, round(value / multiple))
        return int(value) if kind == "integer" else float(value)

    def text(self, name: str, schema: dict[str, Any]) -> str:
        if schema.get("format") in FORMATS:
            return FORMATS[schema["format"]]
        label = name.replace("_", " ").strip()
        if not self.noted:
            # The first text of a closed object carries the note instead.
            value = f"{label} for “{self.subject}” ({self.note})"
            self.noted = True
        else:
            value = f"{label} for “{self.subject}”"
        low = int(schema.get("minLength", 0))
        high = schema.get("maxLength")
        if len(value) < low:
            value = value.ljust(low, ".")
        if high is not None:
            value = value[: int(high)]
        return value


def instance_of(schema: dict[str, Any], instructions: str, note: str) -> Any:
    return InstanceBuilder(schema, instructions, note).build()
