"""A wrong field in catalog-enrichment's input: the type checker must refuse it."""

from agentrun_client.models import CatalogEnrichmentAgenticExecutionInput, StartCatalogEnrichment

body = StartCatalogEnrichment(
    execution_key="catalog-enrichment",
    input_=CatalogEnrichmentAgenticExecutionInput(skuz=["SKU-001"]),
)
