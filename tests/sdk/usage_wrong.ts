// A wrong field in catalog-enrichment's input: the type checker must refuse it.
import type { components } from "./schema";

export const body: components["schemas"]["CatalogEnrichmentStartRequest"] = {
  execution_key: "catalog-enrichment",
  input: { skuz: ["SKU-001"] },
};
