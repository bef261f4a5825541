"""The demo set-up ``make dev`` seeds: a shop's catalog, an agent of each built-in type and an
admin token."""

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.agents.models import Agent
from app.agents.service import create_agent
from app.auth.models import User
from app.auth.service import create_token, create_user
from app.catalog.models import Dataset
from app.catalog.schemas import ProductIn
from app.catalog.service import create_dataset, create_products

DEMO_USER = "demo"
DEMO_DATASET = "Demo shop"
DEMO_PRODUCTS = [
    ProductIn(
        sku="SKU-001",
        name="Trail running shoe",
        properties={"colour": "blue", "weight_g": 280, "drop_mm": 6},
    ),
    ProductIn(
        sku="SKU-002",
        name="Packable rain jacket",
        properties={"waterproof_mm": 20000, "weight_g": 190},
    ),
    ProductIn(
        sku="SKU-003",
        name="Merino hiking socks",
        description="Cushioned merino wool socks that stay warm when wet.",
        properties={"wool_percent": 70},
    ),
]


@dataclass(frozen=True)
class DemoSetup:
    token: str
    catalog_agent_id: int
    task_agent_id: int
    invoice_agent_id: int


async def _demo_user(session: AsyncSession) -> User:
    user = await session.scalar(select(User).where(User.username == DEMO_USER))
    return user or await create_user(session, DEMO_USER, is_admin=True)


async def _demo_agent(session: AsyncSession, dataset: Dataset, agent_type: str, name: str) -> Agent:
    agent = await session.scalar(
        select(Agent).where(Agent.dataset_id == dataset.id, Agent.agent_type == agent_type)
    )
    return agent or await create_agent(
        session, name=name, dataset_id=dataset.id, agent_type=agent_type, file_upload=True
    )


async def seed_demo(session: AsyncSession) -> DemoSetup:
    """Create what is missing of the demo set-up (run again, it adds only a fresh token)."""
    user = await _demo_user(session)
    dataset = await session.scalar(select(Dataset).where(Dataset.name == DEMO_DATASET))
    if dataset is None:
        dataset = await create_dataset(session, DEMO_DATASET)
        await create_products(session, dataset.id, DEMO_PRODUCTS)
    catalog_agent = await _demo_agent(session, dataset, "catalog-enrichment", "Catalog enricher")
    task_agent = await _demo_agent(session, dataset, "structured-task", "Task runner")
    invoice_agent = await _demo_agent(session, dataset, "invoice-scanning", "Invoice scanner")
    token = await create_token(session, user, "make-dev")
    return DemoSetup(
        token=token,
        catalog_agent_id=catalog_agent.id,
        task_agent_id=task_agent.id,
        invoice_agent_id=invoice_agent.id,
    )
