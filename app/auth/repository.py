"""The statements on tokens and users that every request runs.

Plain SQLAlchemy Core on the request's session, in its transaction (app/core/db.py); SQLAlchemy
caches each statement's compiled form, so building them per call costs a cache lookup.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    Subquery,
    Table,
    bindparam,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.models import ApiToken, User

# A row read by name.
Row = Mapping[str, Any]

_tokens = cast(Table, ApiToken.__table__)
_users = User.__table__


def live_token_query() -> Select[Any]:
    """The live token (not revoked, of an active user) whose key has the digest bound as
    ``digest``, with its user's columns. ``TokenWith`` joins it to other reads, so that a
    request is authenticated in the same round trip."""
    return (
        select(
            _tokens.c.id.label("token_id"),
            _tokens.c.key_sha256,
            _tokens.c.last_used_at,
            _users.c.id,
            _users.c.username,
            _users.c.is_admin,
            _users.c.created_at,
            # Read with the token so that a start without quotas costs no second query.
            _users.c.max_executions_per_day,
            _users.c.max_tokens_per_day,
        )
        .join_from(_tokens, _users, _users.c.id == _tokens.c.user_id)
        .where(
            _tokens.c.key_sha256 == bindparam("digest"),
            _tokens.c.revoked_at.is_(None),
            _users.c.is_active.is_(True),
        )
    )


_LIVE_TOKEN = live_token_query()
# On the table: an UPDATE of the ORM entity goes through the ORM's bulk machinery.
_MARK_USED = (
    update(_tokens)
    .where(_tokens.c.id == bindparam("token_id"))
    .values(last_used_at=bindparam("now"))
)


async def read_live_token(session: AsyncSession, digest: str) -> Row | None:
    """The ``live_token_query`` row for ``digest``, or None."""
    row: Row | None = (await session.execute(_LIVE_TOKEN, {"digest": digest})).mappings().first()
    return row


async def mark_token_used(session: AsyncSession, token_id: int, now: datetime) -> None:
    await session.execute(_MARK_USED, {"token_id": token_id, "now": now})


@dataclass(frozen=True)
class TokenWith:
    """A read of the live token of a key and, with it, one object its user may have (the
    object's columns labelled ``prefix`` + name; NULLs when there is none)."""

    statement: Select[Any]
    prefix: str
    names: tuple[str, ...]

    @classmethod
    def build(
        cls,
        prefix: str,
        table: FromClause,
        columns: Mapping[str, ColumnElement[Any]],
        on: Callable[[Subquery], ColumnElement[bool]],
    ) -> "TokenWith":
        """The live token outer-joined with ``table`` on ``on(token)`` (which names the object
        and says whether the token's user may have it), reading ``columns`` of it by name, one
        of them ``id``."""
        assert "id" in columns
        token = live_token_query().subquery("token")
        labelled = (column.label(f"{prefix}{name}") for name, column in columns.items())
        statement = select(token, *labelled).select_from(token.outerjoin(table, on(token)))
        return cls(statement, prefix, tuple(columns))

    async def read(self, session: AsyncSession, digest: str, **values: Any) -> Row | None:
        result = await session.execute(self.statement, {"digest": digest, **values})
        row: Row | None = result.mappings().first()
        return row

    def object_of(self, row: Row) -> dict[str, Any] | None:
        """The object's columns by name, or None when the row has none."""
        if row[f"{self.prefix}id"] is None:
            return None
        return {name: row[f"{self.prefix}{name}"] for name in self.names}
