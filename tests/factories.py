"""One-line builders for the objects tests need, written through the real models and services."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from httpx import ASGITransport, AsyncClient
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.agents.models import Agent
from app.auth.models import User
from app.auth.service import create_token, create_user
from app.catalog.models import Dataset, DatasetMember, Product
from app.conversations.models import Conversation, Message
from app.core.config import Settings
from app.core.db import utcnow
from app.executions.models import AgenticExecution


@dataclass
class Account:
    user: User
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self.token}"}


class Factory:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self._users = 0

    async def _save(self, obj: Any) -> Any:
        async with self.sessionmaker() as session:
            session.add(obj)
            await session.commit()
        return obj

    async def account(self, *, admin: bool = False, username: str | None = None) -> Account:
        self._users += 1
        async with self.sessionmaker() as session:
            user = await create_user(session, username or f"user{self._users}", is_admin=admin)
            token = await create_token(session, user)
            await session.commit()
        return Account(user, token)

    async def dataset(self, *members: Account, name: str = "Shop") -> Dataset:
        dataset = await self._save(Dataset(name=name))
        for member in members:
            await self._save(DatasetMember(dataset_id=dataset.id, user_id=member.user.id))
        return dataset  # type: ignore[no-any-return]

    async def agent(
        self,
        dataset: Dataset,
        *,
        agent_type: str = "catalog-enrichment",
        file_upload: bool = False,
        model_settings: dict[str, Any] | None = None,
        name: str = "Enricher",
        limits: dict[str, Any] | None = None,
    ) -> Agent:
        agent = Agent(
            dataset_id=dataset.id,
            name=name,
            agent_type=agent_type,
            file_upload=file_upload,
            model_settings=model_settings or {},
            limits=limits,
        )
        return await self._save(agent)  # type: ignore[no-any-return]

    async def product(self, dataset: Dataset, sku: str, **fields: Any) -> Product:
        product = Product(dataset_id=dataset.id, sku=sku, **fields)
        return await self._save(product)  # type: ignore[no-any-return]

    async def message(
        self, conversation_id: int, role: str, content: str, payload: dict[str, Any] | None = None
    ) -> Message:
        message = Message(
            conversation_id=conversation_id, role=role, content=content, payload=payload
        )
        return await self._save(message)  # type: ignore[no-any-return]

    async def execution(
        self, agent: Agent, owner: Account, *, execution_key: str | None = None, **fields: Any
    ) -> AgenticExecution:
        """An execution row as the API would store it, without enqueueing it."""
        async with self.sessionmaker() as session:
            conversation = Conversation(agent_id=agent.id, user_id=owner.user.id, locked=True)
            session.add(conversation)
            await session.flush()
            execution = AgenticExecution(
                agent_id=agent.id,
                user_id=owner.user.id,
                dataset_id=agent.dataset_id,
                execution_key=execution_key or agent.agent_type,
                conversation_id=conversation.id,
                input=fields.pop("input", {}),
                # Enqueued at insert, as the API does on a service with free slots.
                dispatched_at=fields.pop("dispatched_at", fields.get("started_at", utcnow())),
                **fields,
            )
            session.add(execution)
            await session.commit()
        return execution


@asynccontextmanager
async def client_with_settings(settings: Settings, **overrides: Any) -> AsyncIterator[AsyncClient]:
    """A client of a second app whose settings differ from the suite's (a tiny limit, an
    unreachable Redis or database, ...), its lifespan entered."""
    from app.main import create_app

    app = create_app(settings.model_copy(update=overrides))
    async with (
        app.router.lifespan_context(app),
        AsyncClient(transport=ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        yield client
