"""A built-in type's ``Input`` may change incompatibly only with a new ``version``.

tests/definitions/definition_inputs.json records each built-in type's version and ``Input``
schema. Refresh it after a deliberate change with
``.venv/bin/python -m tests.definitions.test_definition_versions``.
"""

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from app.agent_types.catalog_enrichment import CatalogEnrichment
from app.definitions.base import ExecutionDefinition
from app.definitions.compatibility import incompatibilities
from app.definitions.registry import all_definitions

RECORDED = Path(__file__).resolve().parent / "definition_inputs.json"
REFRESH = "refresh it with `.venv/bin/python -m tests.definitions.test_definition_versions`"


def built_in() -> list[ExecutionDefinition]:
    return [d for d in all_definitions() if type(d).__module__.startswith("app.")]


def recorded() -> dict[str, Any]:
    found: dict[str, Any] = json.loads(RECORDED.read_text())
    return found


def problems_with(definition: ExecutionDefinition, record: dict[str, Any]) -> list[str]:
    """Why the definition does not match its record, worst first; empty if it does."""
    schema = definition.input_schema()
    if record["version"] == definition.version:
        broken = incompatibilities(record["input_schema"], schema)
        if broken:
            return [
                f"{definition.key}'s Input changed incompatibly ({'; '.join(broken)}) without a "
                f"new version: bump {type(definition).__name__}.version, then {REFRESH}"
            ]
        if record["input_schema"] != schema:
            return [f"{definition.key}'s Input changed (compatibly): {REFRESH}"]
        return []
    return [f"{definition.key} is now version {definition.version}: {REFRESH}"]


@pytest.mark.parametrize("definition", built_in(), ids=lambda d: d.key)
def test_a_built_in_types_input_matches_its_recorded_version(
    definition: ExecutionDefinition,
) -> None:
    assert problems_with(definition, recorded()[definition.key]) == []


class _NewRequiredField(BaseModel):
    model_config = ConfigDict(extra="forbid")

    additional_instructions: str | None = None
    skus: list[str] | None = None
    priority: int


class _NewOptionalField(BaseModel):
    model_config = ConfigDict(extra="forbid")

    additional_instructions: str | None = None
    skus: list[str] | None = None
    priority: int | None = None


class _SkusRenamed(BaseModel):
    model_config = ConfigDict(extra="forbid")

    additional_instructions: str | None = None
    product_skus: list[str] | None = None


def changed(input_model: type[BaseModel], version: str = "1.0.0") -> ExecutionDefinition:
    class Changed(CatalogEnrichment):
        Input = input_model

    Changed.version = version
    return Changed()


@pytest.mark.parametrize(
    ("input_model", "problem"),
    [
        (_NewRequiredField, "field 'priority' is now required"),
        (_SkusRenamed, "field 'skus' was removed"),
    ],
)
def test_an_incompatible_input_change_without_a_new_version_fails(
    input_model: type[BaseModel], problem: str
) -> None:
    [failure] = problems_with(changed(input_model), recorded()["catalog-enrichment"])

    assert problem in failure
    assert "without a new version: bump" in failure


def test_a_compatible_change_or_a_new_version_only_asks_for_a_refresh() -> None:
    record = recorded()["catalog-enrichment"]

    [optional_added] = problems_with(changed(_NewOptionalField), record)
    [bumped] = problems_with(changed(_NewRequiredField, "2.0.0"), record)

    assert "changed (compatibly)" in optional_added
    assert "is now version 2.0.0" in bumped


def test_a_definition_without_a_version_has_its_distributions() -> None:
    class Unversioned(ExecutionDefinition):
        key = agent_type = name = "unversioned"
        Input = _NewOptionalField

    # This module is in no installed distribution (a plugin's: tests/definitions/test_typed_api.py).
    assert Unversioned.version == "0"


if __name__ == "__main__":
    RECORDED.write_text(
        json.dumps(
            {d.key: {"version": d.version, "input_schema": d.input_schema()} for d in built_in()},
            indent=2,
            sort_keys=True,
        )
        + "\n"
    )
    print(f"wrote {RECORDED}")
