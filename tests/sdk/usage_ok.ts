// A short use of each built-in type with the generated TypeScript types: must type-check.
import type { components } from "./schema";

type StartBody =
  | components["schemas"]["CatalogEnrichmentStartRequest"]
  | components["schemas"]["StructuredTaskStartRequest"]
  | components["schemas"]["InvoiceScanningStartRequest"];

const bodies: StartBody[] = [
  { execution_key: "catalog-enrichment", input: { skus: ["SKU-001"], additional_instructions: "Short." } },
  { execution_key: "structured-task", input: { instructions: "Name three uses of a paperclip." } },
  { execution_key: "invoice-scanning", input: { skus: null } },
];

export function messagesOf(execution: components["schemas"]["CatalogEnrichmentExecution"]): string[] {
  const version: string | null = execution.definition_version;
  return Object.values(execution.result ?? {}).concat(version ?? []);
}

export const count: number = bodies.length;
