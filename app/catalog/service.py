"""Datasets, their members and their products. Members and admins see a dataset; others get 404."""

from collections import Counter
from collections.abc import Sequence

from sqlalchemy import Select, delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import User
from app.catalog.models import Dataset, DatasetMember, Product
from app.catalog.schemas import ProductIn
from app.core.database_errors import is_unique_violation
from app.core.errors import Invalid, NotFound


def visible_datasets(user: User) -> Select[Dataset]:
    """Datasets ``user`` may read: all for admins, those he is a member of for others."""
    query = select(Dataset)
    if user.is_admin:
        return query
    member_of = select(DatasetMember.dataset_id).where(DatasetMember.user_id == user.id)
    return query.where(Dataset.id.in_(member_of))


async def create_dataset(session: AsyncSession, name: str) -> Dataset:
    dataset = Dataset(name=name)
    session.add(dataset)
    await session.flush()
    return dataset


async def list_visible_datasets(session: AsyncSession, user: User) -> Sequence[Dataset]:
    return (await session.scalars(visible_datasets(user).order_by(Dataset.id))).all()


async def get_dataset(session: AsyncSession, dataset_id: int) -> Dataset:
    dataset = await session.get(Dataset, dataset_id)
    if dataset is None:
        raise NotFound("Dataset not found.")
    return dataset


async def get_visible_dataset(session: AsyncSession, user: User, dataset_id: int) -> Dataset:
    dataset = await session.scalar(visible_datasets(user).where(Dataset.id == dataset_id))
    if dataset is None:
        raise NotFound("Dataset not found.")
    return dataset


async def add_member(session: AsyncSession, dataset_id: int, user_id: int) -> bool:
    """Make the user a member of the dataset; False if he already was (nothing changes)."""
    await get_dataset(session, dataset_id)
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("User not found.")
    added = await session.scalar(
        insert(DatasetMember)
        .values(dataset_id=dataset_id, user_id=user_id)
        .on_conflict_do_nothing()
        .returning(DatasetMember.user_id)
    )
    return added is not None


async def members_of(session: AsyncSession, dataset_ids: Sequence[int]) -> dict[int, list[User]]:
    """The members of each dataset, by username (one statement for all of them)."""
    members: dict[int, list[User]] = {dataset_id: [] for dataset_id in dataset_ids}
    rows = await session.execute(
        select(DatasetMember.dataset_id, User)
        .join(User, User.id == DatasetMember.user_id)
        .where(DatasetMember.dataset_id.in_(dataset_ids))
        .order_by(User.username)
    )
    for dataset_id, user in rows:
        members[dataset_id].append(user)
    return members


async def remove_member(session: AsyncSession, dataset_id: int, user_id: int) -> User:
    """Take the user out of the dataset: from the next request on, its agents answer him 404
    (he can no longer start executions on them); the executions he started stay his to read
    (what becomes of those not ended: app/executions/revocation.py). Answers the user.
    404 if the dataset or user does not exist, or he is not a member."""
    await get_dataset(session, dataset_id)
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("User not found.")
    removed = await session.scalar(
        delete(DatasetMember)
        .where(DatasetMember.dataset_id == dataset_id, DatasetMember.user_id == user_id)
        .returning(DatasetMember.user_id)
    )
    if removed is None:
        raise NotFound("The user is not a member of this dataset.")
    return user


def _quoted(skus: Sequence[str]) -> str:
    return ", ".join(repr(sku) for sku in skus)


async def _check_skus_are_new(
    session: AsyncSession, dataset_id: int, items: Sequence[ProductIn]
) -> None:
    counts = Counter(item.sku for item in items)
    repeated = sorted(sku for sku, count in counts.items() if count > 1)
    if repeated:
        raise Invalid({"sku": f"Duplicate sku in the request: {_quoted(repeated)}."})
    existing = (
        await session.scalars(
            select(Product.sku)
            .where(Product.dataset_id == dataset_id, Product.sku.in_(counts))
            .order_by(Product.sku)
        )
    ).all()
    if existing:
        raise Invalid({"sku": f"Already in this dataset: {_quoted(existing)}."})


async def create_products(
    session: AsyncSession, dataset_id: int, items: Sequence[ProductIn]
) -> list[Product]:
    """Add products to the dataset, all or none: any sku already taken rejects the batch."""
    await get_dataset(session, dataset_id)
    await _check_skus_are_new(session, dataset_id, items)
    products = [Product(dataset_id=dataset_id, **item.model_dump()) for item in items]
    session.add_all(products)
    try:
        await session.flush()
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        # Another request took one of the skus between our check and our insert.
        skus = _quoted([item.sku for item in items])
        raise Invalid({"sku": f"Already in this dataset (one of): {skus}."}) from None
    return products


async def list_products(session: AsyncSession, dataset_id: int) -> Sequence[Product]:
    return (
        await session.scalars(
            select(Product).where(Product.dataset_id == dataset_id).order_by(Product.sku)
        )
    ).all()
