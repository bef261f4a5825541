"""The stock tool of ``invoice-scanning``: add an invoice's quantities to the catalog's stock.

Stock is the product's ``properties.stock`` (an integer). What this execution added to each
product is kept in ``properties.stock_receipts`` (execution id → quantity), so that calling
the tool again, or running the execution again after a lost worker, replaces this execution's
receipt instead of adding it twice: the tool is idempotent (``app.definitions.effects``).
"""

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field
from pydantic_ai import RunContext, Tool
from sqlalchemy import select

from app.catalog.models import Product
from app.definitions.effects import effectful
from app.definitions.run import ExecutionRun

UPDATED = "Stock updated successfully"


class StockUpdateItem(BaseModel):
    sku: str = Field(description="Product SKU from the invoice line item.")
    quantity: int = Field(description="Quantity received: added to the current stock.")


@dataclass
class InvoiceState:
    # SKU -> the tool's message for it, and whether it succeeded (None until the tool ran).
    messages: dict[str, str] = field(default_factory=dict)
    succeeded: dict[str, bool] | None = None


def state_of(run: ExecutionRun) -> InvoiceState:
    if not isinstance(run.state, InvoiceState):
        raise TypeError("invoice-scanning tools need an InvoiceState")
    return run.state


def _received(product: Product, execution_id: int, quantity: int) -> str | None:
    """Record this execution's receipt on the product; an error message if it cannot."""
    properties = dict(product.properties or {})
    stock = properties.get("stock", 0)
    receipts = properties.get("stock_receipts", {})
    if isinstance(stock, bool) or not isinstance(stock, int) or not isinstance(receipts, dict):
        return f"Failed to update stock: the product's stock is not a number ({stock!r})"
    earlier = receipts.get(str(execution_id), 0)
    properties["stock"] = stock - (earlier if isinstance(earlier, int) else 0) + quantity
    properties["stock_receipts"] = {**receipts, str(execution_id): quantity}
    product.properties = properties
    return None


def _note_report(ctx: RunContext[ExecutionRun], args: dict[str, Any], result: Any) -> None:
    # A replayed call: the run's state gets the report its earlier attempt made.
    if isinstance(result, dict):
        report = {str(sku): str(message) for sku, message in result.items()}
        state = state_of(ctx.deps)
        state.messages.update(report)
        succeeded = {sku: message == UPDATED for sku, message in report.items()}
        state.succeeded = {**(state.succeeded or {}), **succeeded}


@effectful(idempotent=True, on_replay=_note_report)
async def update_stock_levels(
    ctx: RunContext[ExecutionRun], items: list[StockUpdateItem]
) -> dict[str, str]:
    """Add the quantities of an invoice's line items to the stock of the catalog's products,
    in one batch for all items. Reports success or failure per SKU.

    Args:
        items: The SKU/quantity pairs of the invoice (quantities received, positive).
    """
    state = state_of(ctx.deps)
    totals: dict[str, int] = {}
    for item in items:
        totals[item.sku] = totals.get(item.sku, 0) + item.quantity
    report: dict[str, str] = {}
    succeeded: dict[str, bool] = {}
    async with ctx.deps.session() as session:
        found = await session.scalars(
            select(Product)
            .where(Product.dataset_id == ctx.deps.dataset_id, Product.sku.in_(list(totals)))
            .with_for_update()
        )
        products = {p.sku: p for p in found}
        for sku, quantity in totals.items():
            product = products.get(sku)
            if product is None:
                error: str | None = "Failed to update stock: no product with this SKU"
            elif quantity <= 0:
                error = "Failed to update stock: the quantity received must be positive"
            else:
                error = _received(product, ctx.deps.execution_id, quantity)
            report[sku] = error or UPDATED
            succeeded[sku] = error is None
    state.messages.update(report)
    state.succeeded = {**(state.succeeded or {}), **succeeded}
    return report


STOCK_TOOLS: tuple[Tool[ExecutionRun], ...] = (Tool(update_stock_levels, takes_ctx=True),)
