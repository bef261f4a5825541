from typing import Any

from pydantic import BaseModel, Field


class ExecutionDefinitionOut(BaseModel):
    key: str = Field(examples=["catalog-enrichment"])
    name: str = Field(examples=["Catalog Enrichment"])
    description: str | None
    version: str = Field(
        description="The definition's version; recorded on each execution as `definition_version`.",
        examples=["1.0.0"],
    )
    input_schema: dict[str, Any] = Field(
        description="JSON schema of `input` when starting an execution of this type."
    )
    output_schema: dict[str, Any] | None = Field(
        description="JSON schema of an execution's `result` when finished; null when the "
        "result is a free JSON object (e.g. shaped by the input's own `output_schema`)."
    )
