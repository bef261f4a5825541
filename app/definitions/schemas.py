from typing import Any

from pydantic import BaseModel, Field


class ExecutionDefinitionOut(BaseModel):
    key: str = Field(examples=["catalog-enrichment"])
    name: str = Field(examples=["Catalog Enrichment"])
    description: str | None
    input_schema: dict[str, Any] = Field(
        description="JSON schema of `input` when starting an execution of this type."
    )
