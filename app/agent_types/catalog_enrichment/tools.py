"""The catalog tools of ``catalog-enrichment``: read, search and update the agent's dataset.

Each call uses a short session of its own. Only the SKUs of the execution may be written, and
every write is noted in the run's state so that a validator can tell claimed updates from real
ones. ``update_product`` is at most once (``app.definitions.effects``): a resumed run neither
repeats a write whose result is journaled nor repeats blindly one whose worker died during it.
"""

from dataclasses import dataclass, field
from typing import Any

from pydantic_ai import RunContext, Tool
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from app.catalog.models import Product
from app.core.json_input import DEFAULT_MAX_JSON_DEPTH, NOT_FINITE, json_problem, within_depth
from app.definitions.effects import effectful, read_only
from app.definitions.run import ExecutionRun

SEARCH_LIMIT = 50


@dataclass
class EnrichmentState:
    # The SKUs the result must cover, in order.
    requested: list[str]
    # SKUs update_product changed during this run.
    updated: set[str] = field(default_factory=set)


def state_of(run: ExecutionRun) -> EnrichmentState:
    state = run.state
    if not isinstance(state, EnrichmentState):
        raise TypeError("catalog-enrichment tools need an EnrichmentState")
    return state


def product_data(product: Product) -> dict[str, Any]:
    return {
        "sku": product.sku,
        "name": product.name,
        "description": product.description,
        # A row stored before the depth limit may nest deeper than a tool result can.
        "properties": within_depth(product.properties, DEFAULT_MAX_JSON_DEPTH),
    }


def _escaped(query: str) -> str:
    # The model's text is matched literally: % and _ are not wildcards for it.
    return query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@read_only
async def read_products(ctx: RunContext[ExecutionRun], skus: list[str]) -> dict[str, Any]:
    """Read products of the catalog by SKU: name, description and properties.

    Args:
        skus: The SKUs to read.
    """
    async with ctx.deps.session() as session:
        products = await session.scalars(
            select(Product).where(Product.dataset_id == ctx.deps.dataset_id, Product.sku.in_(skus))
        )
        found = {p.sku: product_data(p) for p in products}
    return {
        "products": [found[sku] for sku in skus if sku in found],
        "not_found": [sku for sku in skus if sku not in found],
    }


@read_only
async def search_catalog(ctx: RunContext[ExecutionRun], query: str) -> list[dict[str, Any]]:
    """Search the catalog for products whose SKU, name or description contains `query`
    (case-insensitive). Useful to find related products or data stored under another SKU.

    Args:
        query: The text to look for.
    """
    pattern = f"%{_escaped(query.strip())}%"
    async with ctx.deps.session() as session:
        products = await session.scalars(
            select(Product)
            .where(
                Product.dataset_id == ctx.deps.dataset_id,
                or_(
                    Product.sku.ilike(pattern, escape="\\"),
                    Product.name.ilike(pattern, escape="\\"),
                    Product.description.ilike(pattern, escape="\\"),
                ),
            )
            .order_by(Product.sku)
            .limit(SEARCH_LIMIT)
        )
        return [product_data(p) for p in products]


def _note_written(ctx: RunContext[ExecutionRun], args: dict[str, Any], result: Any) -> None:
    # A replayed update_product: the run's state learns the write its earlier attempt made.
    sku = args.get("sku")
    if result in (f"Product {sku} created.", f"Product {sku} updated."):
        state_of(ctx.deps).updated.add(str(sku))


@effectful(idempotent=False, on_replay=_note_written)
async def update_product(
    ctx: RunContext[ExecutionRun],
    sku: str,
    name: str | None = None,
    description: str | None = None,
    properties: dict[str, Any] | None = None,
) -> str:
    """Write product data for one SKU of this execution. Only the fields given change;
    `properties` are merged into the existing ones (a null value removes a property).
    A SKU missing from the catalog is created.

    Args:
        sku: The product's SKU (one of this execution's SKUs).
        name: The new product name.
        description: The new product description.
        properties: Properties to set, e.g. {"color": "red", "weight_kg": 1.2}.
    """
    state = state_of(ctx.deps)
    if sku not in state.requested:
        return f"SKU {sku!r} is not one of this execution's SKUs; it was not changed."
    if name is None and description is None and not properties:
        return "Nothing to update: give a name, a description or properties."
    # As for an admin's products (at the default limit): deeper properties could not be
    # listed, and NaN cannot be stored.
    problem = json_problem(properties, DEFAULT_MAX_JSON_DEPTH) if properties else None
    if problem is not None:
        path, message = problem
        where = f"properties.{path}" if path and message == NOT_FINITE else "properties"
        return f"{where}: {message} Product {sku} was not changed."
    try:
        async with ctx.deps.session() as session:
            product = await session.scalar(
                select(Product)
                .where(Product.dataset_id == ctx.deps.dataset_id, Product.sku == sku)
                .with_for_update()
            )
            created = product is None
            if product is None:
                product = Product(dataset_id=ctx.deps.dataset_id, sku=sku, properties={})
                session.add(product)
            if name is not None:
                product.name = name.replace("\x00", "").strip()[:300]
            if description is not None:
                product.description = description.replace("\x00", "").strip()
            if properties:
                merged = {**(product.properties or {}), **properties}
                product.properties = {k: v for k, v in merged.items() if v is not None}
    except IntegrityError:
        # Two parallel calls created the same missing SKU; one of them won.
        return f"Product {sku} was written concurrently; read it again before updating it."
    state.updated.add(sku)
    return f"Product {sku} {'created' if created else 'updated'}."


CATALOG_TOOLS: tuple[Tool[ExecutionRun], ...] = (
    Tool(read_products, takes_ctx=True),
    Tool(search_catalog, takes_ctx=True),
    Tool(update_product, takes_ctx=True),
)
