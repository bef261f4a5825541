from app.agent_types.catalog_enrichment.definition import CatalogEnrichment

definition = CatalogEnrichment()

__all__ = ["CatalogEnrichment", "definition"]
