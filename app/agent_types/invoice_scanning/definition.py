"""``invoice-scanning``: read the attached supplier invoices and add their quantities to the
stock of the agent's catalog (Enthusiast's invoice scanning agent, with the catalog as the
shop). The result maps every SKU updated to the stock tool's message for it."""

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, RootModel
from pydantic_ai import StructuredDict, Tool
from pydantic_ai.output import OutputSpec

from app.agent_types.invoice_scanning.stock import STOCK_TOOLS, UPDATED, InvoiceState, state_of
from app.definitions.base import ExecutionDefinition, files_paragraph
from app.definitions.files import FILE_TOOLS
from app.definitions.run import ExecutionRun
from app.definitions.validators import OK, ExecutionFailed, Fail, Retry, Verdict


class InvoiceScanningAgenticExecutionInput(BaseModel):
    """Input for the invoice scanning agentic execution."""

    model_config = ConfigDict(extra="forbid")

    additional_instructions: str | None = None
    # The SKUs the invoices are expected to hold; each must be updated.
    skus: list[str] | None = None


class InvoiceScanningResult(RootModel[dict[str, str]]):
    """Every SKU whose stock was updated mapped to the stock tool's message for it."""


RESULT_TYPE: type[dict[str, Any]] = StructuredDict(
    {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "description": "Every SKU sent to update_stock_levels mapped to the message it "
        f"returned ('{UPDATED}' when it succeeded).",
    },
    name="stock_update_result",
)

DEFAULT_TASK = "Process the attached invoices and update the stock levels."
INSTRUCTIONS = """\
You scan INCOMING supplier invoices: the stock of every product on them must be INCREASED.
1. Read ALL attached invoice files (list_files, read_file).
2. Extract every line item with a SKU and a quantity. If the same SKU appears in several files,
   sum the quantities.
3. Call update_stock_levels ONCE with ALL line items, with POSITIVE quantities.
4. Answer with the object update_stock_levels returned (SKU -> message).
If no file holds recognisable line items with SKU and quantity, call stop_execution with the
reason. Do not stop for a single SKU's failure: it is reported in the result.
You work autonomously: nobody will answer questions."""


def input_of(run: ExecutionRun) -> InvoiceScanningAgenticExecutionInput:
    if not isinstance(run.input, InvoiceScanningAgenticExecutionInput):
        raise TypeError("invoice-scanning runs take InvoiceScanningAgenticExecutionInput")
    return run.input


def all_stock_updates_succeeded(run: ExecutionRun, output: dict[str, Any]) -> Verdict:
    """The tool ran, and every SKU it was given was updated (a failure is not retried: the
    same data would fail again)."""
    succeeded = state_of(run).succeeded
    if succeeded is None:
        return Retry(
            "You answered without calling update_stock_levels. Read the invoices, extract all "
            "SKU/quantity line items and call update_stock_levels before answering."
        )
    failed = [sku for sku, ok in succeeded.items() if not ok]
    if failed:
        reasons = "; ".join(f"{sku}: {state_of(run).messages[sku]}" for sku in failed)
        return Fail(f"Stock update failed for the following SKUs: {reasons}.")
    return OK


def all_expected_skus_updated(run: ExecutionRun, output: dict[str, Any]) -> Verdict:
    """Every SKU of the input (when given) was sent to the stock tool."""
    expected = input_of(run).skus or []
    missing = [sku for sku in expected if sku not in (state_of(run).succeeded or {})]
    if missing:
        return Retry(
            f"The following SKUs from the expected list were not updated: {', '.join(missing)}. "
            "Re-read the invoices and look for these SKUs. If they are present, call "
            "update_stock_levels for them; if they are not, stop the execution."
        )
    return OK


class InvoiceScanning(ExecutionDefinition):
    key = "invoice-scanning"
    agent_type = "invoice-scanning"
    name = "Invoice Scanning"
    description = (
        "Reads the attached invoices and adds their quantities to the stock "
        "(`properties.stock`) of the catalog's products."
    )
    version = "1.0.0"
    Input = InvoiceScanningAgenticExecutionInput
    Output = InvoiceScanningResult
    instructions = INSTRUCTIONS
    validators = (all_stock_updates_succeeded, all_expected_skus_updated)

    async def prepare(self, run: ExecutionRun) -> InvoiceState:
        if not run.files:
            raise ExecutionFailed(
                "No invoice was attached: send the invoices as files (an agent with file upload)."
            )
        return InvoiceState()

    async def user_prompt(self, run: ExecutionRun) -> str:
        parts = [input_of(run).additional_instructions or DEFAULT_TASK]
        expected = input_of(run).skus
        if expected:
            parts.append("The invoices are expected to hold these SKUs: " + ", ".join(expected))
        parts.append(files_paragraph(run))
        return "\n\n".join(parts)

    def tools(self, run: ExecutionRun) -> Sequence[Tool[ExecutionRun]]:
        return (*FILE_TOOLS, *STOCK_TOOLS)

    def output_type(self, run: ExecutionRun) -> OutputSpec[Any]:
        return RESULT_TYPE

    def result_of(self, run: ExecutionRun, output: Any) -> Any:
        # What the tool did, not what the model says it did.
        return dict(state_of(run).messages)
