"""The start form generated from an input schema, and the input it posts back."""

import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import FormData

from app.console.start_form import field_messages, input_fields, posted_input


class Colour(enum.StrEnum):
    RED = "red"
    BLUE = "blue"


class Example(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str = Field(max_length=80)
    notes: str | None = None
    count: int = 3
    ratio: float | None = None
    urgent: bool = False
    colour: Colour = Colour.RED
    skus: list[str] | None = None
    extra: dict[str, Any] | None = None


def test_each_simple_type_gets_its_field_and_the_rest_raw_json() -> None:
    fields = {f.name: f for f in input_fields(Example.model_json_schema())}

    kinds = {name: field.kind for name, field in fields.items()}
    assert kinds == {
        "title": "string",
        "notes": "text",
        "count": "integer",
        "ratio": "number",
        "urgent": "boolean",
        "colour": "enum",
        "skus": "strings",
        "extra": "json",
    }
    assert fields["colour"].options == ("red", "blue")
    assert fields["title"].required
    assert not fields["notes"].required
    assert fields["count"].initial() == "3"


def test_the_posted_form_becomes_an_input_the_model_accepts() -> None:
    fields = input_fields(Example.model_json_schema())
    form = FormData(
        [
            ("input.title", "Shirts"),
            ("input.notes", ""),
            ("input.count", "7"),
            ("input.ratio", "0.5"),
            ("input.urgent", "on"),
            ("input.colour", "blue"),
            ("input.skus", "A-1\n\n B-2 \n"),
            ("input.extra", '{"k": [1, 2]}'),
        ]
    )

    posted = posted_input(fields, form)

    assert posted.errors == {}
    assert posted.value == {
        "title": "Shirts",
        "count": 7,
        "ratio": 0.5,
        "urgent": True,
        "colour": "blue",
        "skus": ["A-1", "B-2"],
        "extra": {"k": [1, 2]},
    }
    assert Example.model_validate(posted.value).colour is Colour.BLUE


def test_bad_json_is_a_field_error_and_the_apis_errors_land_on_their_fields() -> None:
    fields = input_fields(Example.model_json_schema())
    posted = posted_input(fields, FormData([("input.title", "x"), ("input.extra", "{nope")]))

    by_field, general = field_messages(
        {"input": {"count": "Input should be a valid integer", "extra.k": "Bad"}}
    )
    files_field, files_general = field_messages(
        {"detail": "This agent does not support file uploads.", "files": ["Not allowed."]}
    )

    assert posted.errors["extra"].startswith("Invalid JSON")
    assert by_field == {"count": "Input should be a valid integer", "extra": "k: Bad"}
    assert general == []
    assert files_field == {}
    assert files_general == ["This agent does not support file uploads.", "files: Not allowed."]
