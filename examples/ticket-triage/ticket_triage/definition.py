"""``ticket-triage``: classify a customer support ticket by category and priority.

The model reads the ticket; when it names a product, it looks the product up in the agent's
dataset (``lookup_product``) and answers the category, the priority, the product's SKU (if any)
and a one-sentence summary for the support team. A validator holds the SKU to a product the
lookup found in this run, so that a guessed SKU goes back to the model.
"""

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field
from pydantic_ai import RunContext, Tool
from sqlalchemy import select

from agentrun import OK, ExecutionDefinition, ExecutionRun, Retry, Verdict, read_only
from app.catalog.models import Product


class TicketInput(BaseModel):
    """A support ticket as the customer wrote it."""

    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1, max_length=20_000)
    customer_email: str | None = Field(default=None, max_length=320)


class Category(enum.StrEnum):
    BILLING = "billing"
    BUG = "bug"
    HOW_TO = "how_to"
    SHIPPING = "shipping"
    OTHER = "other"


class Priority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class Triage(BaseModel):
    """Where the ticket goes and how soon."""

    category: Category
    priority: Priority
    product_sku: str | None = Field(
        default=None, description="The SKU of the product the ticket is about, if any."
    )
    summary: str = Field(min_length=1, max_length=500, description="One sentence for support.")


INSTRUCTIONS = """\
You triage customer support tickets. Read the ticket and decide:
- category: billing, bug, how_to, shipping or other;
- priority: urgent when the customer cannot use what they paid for at all or loses data,
  high when a paid feature is broken or an order is lost, normal for most questions,
  low for feedback and wishes;
- product_sku: when the ticket mentions a product (a SKU or a product name), look it up with
  lookup_product and give the SKU it confirms; otherwise leave it empty;
- summary: one sentence a support engineer reads first.
You work autonomously: nobody will answer questions."""


@dataclass
class TriageState:
    """What ``lookup_product`` found in this run (``run.state``), for the validator."""

    found: set[str] = field(default_factory=set)


def state_of(run: ExecutionRun) -> TriageState:
    if not isinstance(run.state, TriageState):
        raise TypeError("ticket-triage runs keep a TriageState")
    return run.state


@read_only
async def lookup_product(ctx: RunContext[ExecutionRun], sku: str) -> str:
    """Look up a product of the catalog by its SKU.

    Args:
        sku: The product's SKU, as the ticket writes it.
    """
    run = ctx.deps
    async with run.session() as session:
        product = await session.scalar(
            select(Product).where(Product.dataset_id == run.dataset_id, Product.sku == sku.strip())
        )
    if product is None:
        return f"No product with SKU {sku!r} in the catalog."
    state_of(run).found.add(product.sku)
    return f"{product.sku}: {product.name}. {product.description}".strip()


def sku_was_looked_up(run: ExecutionRun, output: Triage) -> Verdict:
    """A SKU in the answer must be one ``lookup_product`` confirmed in this run."""
    if output.product_sku is None or output.product_sku in state_of(run).found:
        return OK
    return Retry(
        f"product_sku {output.product_sku!r} was not confirmed by lookup_product in this run. "
        "Look it up first, or leave product_sku empty if the product is not in the catalog."
    )


class TicketTriage(ExecutionDefinition):
    key = "ticket-triage"
    agent_type = "ticket-triage"
    name = "Ticket Triage"
    description = "Classify a customer support ticket by category and priority."
    version = "1.0.0"
    Input = TicketInput
    Output = Triage
    instructions = INSTRUCTIONS
    validators = (sku_was_looked_up,)
    max_retries = 2
    timeout_seconds = 60
    max_model_requests = 10

    async def prepare(self, run: ExecutionRun) -> TriageState:
        return TriageState()

    def tools(self, run: ExecutionRun) -> Sequence[Tool[ExecutionRun]]:
        return (Tool(lookup_product, takes_ctx=True),)
