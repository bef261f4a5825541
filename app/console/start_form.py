"""A start form generated from an execution type's input schema, and the input it posts.

Strings, numbers, booleans, enums and arrays of strings get fields of their own; anything
else (objects, nested arrays, unions) a JSON text area. The input is then validated by the
definition exactly as the API's start request is, so the errors shown are the API's.
"""

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.datastructures import FormData

Kind = Literal["string", "text", "integer", "number", "boolean", "enum", "strings", "json"]
FIELD_PREFIX = "input."
# Strings allowed to be longer than this get a text area.
SHORT_STRING = 200


@dataclass(frozen=True)
class InputField:
    name: str
    label: str
    kind: Kind
    required: bool
    description: str | None = None
    options: tuple[Any, ...] = ()
    default: Any = None

    @property
    def form_name(self) -> str:
        return FIELD_PREFIX + self.name

    def initial(self) -> str:
        """The field's default as the form shows it."""
        if self.default is None:
            return ""
        if self.kind == "strings" and isinstance(self.default, list):
            return "\n".join(str(item) for item in self.default)
        if self.kind == "json":
            return json.dumps(self.default, indent=2)
        return str(self.default)


def _resolved(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    reference = schema.get("$ref")
    if isinstance(reference, str) and reference.startswith("#/$defs/"):
        beside = {key: value for key, value in schema.items() if key != "$ref"}
        return {**defs.get(reference.rsplit("/", 1)[-1], {}), **beside}
    return schema


def _without_null(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """``X | None`` as X: leaving a field empty leaves it out, and its default applies."""
    options = schema.get("anyOf")
    if isinstance(options, list):
        others = [option for option in options if option != {"type": "null"}]
        if len(others) == 1 and len(others) < len(options):
            return _resolved(others[0], defs)
    return schema


def _kind(schema: dict[str, Any]) -> Kind:
    if isinstance(schema.get("enum"), list):
        return "enum"
    kind = schema.get("type")
    if kind == "string":
        short = isinstance(schema.get("maxLength"), int) and schema["maxLength"] <= SHORT_STRING
        return "string" if short else "text"
    if kind in ("integer", "number", "boolean"):
        return kind  # type: ignore[no-any-return]
    if kind == "array" and _resolved(schema.get("items", {}), {}).get("type") == "string":
        return "strings"
    return "json"


def input_fields(schema: dict[str, Any]) -> list[InputField]:
    """The fields of a form for the object ``schema`` describes, in its order."""
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    fields = []
    for name, raw in schema.get("properties", {}).items():
        described = _without_null(_resolved(raw, defs), defs)
        kind = _kind(described)
        fields.append(
            InputField(
                name=name,
                label=raw.get("title") or described.get("title") or name,
                kind=kind,
                required=name in required,
                description=raw.get("description") or described.get("description"),
                options=tuple(described.get("enum", ())) if kind == "enum" else (),
                default=raw.get("default"),
            )
        )
    return fields


@dataclass
class PostedInput:
    """The input a form posted, and the fields whose text could not be read (bad JSON)."""

    value: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _number(text: str, kind: Kind) -> Any:
    try:
        return int(text) if kind == "integer" else float(text)
    except ValueError:
        # As typed: the definition's validation names the field and says what is wrong.
        return text


def posted_input(fields: list[InputField], form: FormData) -> PostedInput:
    posted = PostedInput()
    for input_field in fields:
        raw = form.get(input_field.form_name)
        text = raw if isinstance(raw, str) else ""
        kind = input_field.kind
        if kind == "boolean":
            posted.value[input_field.name] = text == "on"
        elif text.strip() == "" and kind != "text" and kind != "string":
            continue
        elif kind in ("string", "text"):
            if text != "" or input_field.required:
                posted.value[input_field.name] = text
        elif kind in ("integer", "number"):
            posted.value[input_field.name] = _number(text.strip(), kind)
        elif kind == "enum":
            chosen = [option for option in input_field.options if str(option) == text]
            posted.value[input_field.name] = chosen[0] if chosen else text
        elif kind == "strings":
            posted.value[input_field.name] = [
                line.strip() for line in text.splitlines() if line.strip()
            ]
        else:
            try:
                posted.value[input_field.name] = json.loads(text)
            except ValueError as exc:
                posted.errors[input_field.name] = f"Invalid JSON: {exc}"
    return posted


def field_messages(body: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """A start request's 400 body as the form shows it: messages by input field (the API
    names nested ones ``a.b``: shown on ``a``), and the rest above the form."""
    by_field: dict[str, str] = {}
    general: list[str] = []
    for key, value in body.items():
        if key == "input" and isinstance(value, dict):
            for path, message in value.items():
                name, _, rest = str(path).partition(".")
                by_field[name] = f"{rest}: {message}" if rest else str(message)
        elif isinstance(value, list):
            general.extend(f"{key}: {message}" for message in value)
        elif key == "detail" or not isinstance(value, dict):
            general.append(str(value))
    # A field's list message may repeat the detail: once is enough.
    return by_field, list(dict.fromkeys(general))
