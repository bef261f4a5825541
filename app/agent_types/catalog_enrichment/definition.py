"""``catalog-enrichment``: fill in and correct product data of the agent's dataset."""

from pydantic import BaseModel, ConfigDict

from app.definitions.base import ExecutionDefinition


class CatalogEnrichmentAgenticExecutionInput(BaseModel):
    """Input for the catalog enrichment agentic execution."""

    model_config = ConfigDict(extra="forbid")

    additional_instructions: str | None = None
    skus: list[str] | None = None


class CatalogEnrichment(ExecutionDefinition):
    key = "catalog-enrichment"
    agent_type = "catalog-enrichment"
    name = "Catalog Enrichment"
    description = None
    Input = CatalogEnrichmentAgenticExecutionInput
