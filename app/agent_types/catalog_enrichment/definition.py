"""``catalog-enrichment``: fill in and correct product data of the agent's dataset.

The agent reads the catalog and the uploaded files, writes what it learns with
``update_product`` and answers ``{sku: message}`` for every SKU of the execution
("Product updated successfully" for each one it updated). A SKU with no data anywhere ends
the run through ``stop_execution``.
"""

import re
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, RootModel
from pydantic_ai import StructuredDict, Tool
from pydantic_ai.output import OutputSpec
from sqlalchemy import or_, select

from app.agent_types.catalog_enrichment.tools import CATALOG_TOOLS, EnrichmentState, state_of
from app.catalog.models import Product
from app.definitions.base import ExecutionDefinition, files_paragraph
from app.definitions.files import FILE_TOOLS
from app.definitions.run import ExecutionRun
from app.definitions.validators import OK, Retry, Verdict

# Without explicit SKUs, one execution takes at most this many products that need work.
MAX_PRODUCTS_PER_RUN = 100
UPDATED_MESSAGE = "Product updated successfully"

_CLAIMS_UPDATE = re.compile(r"\b(updated|created|enriched)\b", re.IGNORECASE)
_NEGATION = re.compile(r"\b(not|no|never|unable|failed|couldn't|could not)\b", re.IGNORECASE)


class CatalogEnrichmentAgenticExecutionInput(BaseModel):
    """Input for the catalog enrichment agentic execution."""

    model_config = ConfigDict(extra="forbid")

    additional_instructions: str | None = None
    skus: list[str] | None = None


class CatalogEnrichmentResult(RootModel[dict[str, str]]):
    """Every SKU of the execution mapped to a message ('Product updated successfully' for each
    product updated, otherwise the reason)."""


RESULT_TYPE: type[dict[str, Any]] = StructuredDict(
    {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "description": (
            "One entry per SKU of the execution: the SKU mapped to a short message, "
            f"'{UPDATED_MESSAGE}' for each product you updated."
        ),
    },
    name="enrichment_result",
)

INSTRUCTIONS = f"""\
You enrich a product catalog. For each SKU you are given:
1. Read the product with read_products (it may be missing or incomplete).
2. Look for information about it: in the uploaded files (list_files, read_file) and in the
   catalog itself (search_catalog).
3. Write what you found with update_product: a clear product name, a factual description of
   two to four sentences, and properties (attributes such as color, size, material, weight).
   Use only information from these sources; never invent facts.
Finally call the result tool with an object mapping every SKU to a message:
"{UPDATED_MESSAGE}" for each product you updated, otherwise a short reason.
If no data exists for a SKU anywhere you can look, call stop_execution with the reason
"No product data found for SKU <sku> in any available resource."
You work autonomously: nobody will answer questions."""


def input_of(run: ExecutionRun) -> CatalogEnrichmentAgenticExecutionInput:
    if not isinstance(run.input, CatalogEnrichmentAgenticExecutionInput):
        raise TypeError("catalog-enrichment runs take CatalogEnrichmentAgenticExecutionInput")
    return run.input


def claims_update(message: str) -> bool:
    return bool(_CLAIMS_UPDATE.search(message)) and not _NEGATION.search(message)


def covers_requested_skus(run: ExecutionRun, output: dict[str, Any]) -> Verdict:
    """Every SKU of the execution, and only those, with a non-empty message."""
    requested = state_of(run).requested
    missing = [sku for sku in requested if sku not in output]
    unexpected = [sku for sku in output if sku not in requested]
    blank = [sku for sku, msg in output.items() if not isinstance(msg, str) or not msg.strip()]
    problems = []
    if missing:
        problems.append(f"it is missing these SKUs: {', '.join(missing)}")
    if unexpected:
        problems.append(f"it has SKUs that are not part of this execution: {', '.join(unexpected)}")
    if blank:
        problems.append(f"these SKUs have no message (a non-empty string): {', '.join(blank)}")
    if problems:
        return Retry(
            "Your result must map exactly the SKUs of this execution to a message, but "
            + "; ".join(problems)
            + "."
        )
    return OK


def claims_match_updates(run: ExecutionRun, output: dict[str, Any]) -> Verdict:
    """A SKU reported as updated must have been written with update_product in this run."""
    updated = state_of(run).updated
    unfounded = [
        sku
        for sku, message in output.items()
        if isinstance(message, str) and claims_update(message) and sku not in updated
    ]
    if unfounded:
        return Retry(
            f"You reported {', '.join(unfounded)} as updated, but update_product was not called "
            "for them. Call update_product with the data you found first, or report why the "
            "product was not updated."
        )
    return OK


class CatalogEnrichment(ExecutionDefinition):
    key = "catalog-enrichment"
    agent_type = "catalog-enrichment"
    name = "Catalog Enrichment"
    description = None
    version = "1.0.0"
    Input = CatalogEnrichmentAgenticExecutionInput
    Output = CatalogEnrichmentResult
    instructions = INSTRUCTIONS
    validators = (covers_requested_skus, claims_match_updates)
    # About three requests per product (read, update, result) and a few searches.
    max_model_requests = 400

    async def prepare(self, run: ExecutionRun) -> EnrichmentState:
        skus = input_of(run).skus
        if skus is not None:
            return EnrichmentState(requested=list(dict.fromkeys(skus)))
        # No SKUs given: the products of the dataset that miss a name or a description.
        async with run.session() as session:
            needing_work = await session.scalars(
                select(Product.sku)
                .where(
                    Product.dataset_id == run.dataset_id,
                    or_(Product.name == "", Product.description == ""),
                )
                .order_by(Product.sku)
                .limit(MAX_PRODUCTS_PER_RUN)
            )
            return EnrichmentState(requested=list(needing_work))

    async def user_prompt(self, run: ExecutionRun) -> str:
        requested = state_of(run).requested
        if requested:
            task = "Enrich these products (SKUs):\n" + "\n".join(f"- {s}" for s in requested)
        else:
            task = "There are no products to enrich: answer with an empty object {}."
        parts = [task]
        instructions = input_of(run).additional_instructions
        if instructions:
            parts.append(f"Additional instructions:\n{instructions}")
        if run.files:
            parts.append(files_paragraph(run))
        return "\n\n".join(parts)

    def tools(self, run: ExecutionRun) -> Sequence[Tool[ExecutionRun]]:
        return (*FILE_TOOLS, *CATALOG_TOOLS) if run.files else CATALOG_TOOLS

    def output_type(self, run: ExecutionRun) -> OutputSpec[Any]:
        return RESULT_TYPE
