"""The SQL the list endpoint emits, reproduced from the service functions themselves.

``count_executions``, ``list_executions`` and ``files_by_conversation`` are called with a
recording stand-in for the session: it keeps each statement instead of running it, and the
statement is compiled for PostgreSQL with its parameters inlined, ready for EXPLAIN ANALYZE.
What the API process runs is the same code, so the same SQL (as long as both load the same
version of app/).
"""

from collections.abc import Iterator
from typing import Any

from sqlalchemy.dialects import postgresql


class _NoRows:
    def all(self) -> list[Any]:
        return []

    def first(self) -> None:
        return None

    def scalars(self) -> "_NoRows":
        return self

    def __iter__(self) -> Iterator[Any]:
        return iter([])


class RecordingSession:
    def __init__(self) -> None:
        self.statements: list[Any] = []

    async def scalar(self, statement: Any, *args: Any, **kwargs: Any) -> int:
        self.statements.append(statement)
        return 0

    async def scalars(self, statement: Any, *args: Any, **kwargs: Any) -> _NoRows:
        self.statements.append(statement)
        return _NoRows()

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> _NoRows:
        self.statements.append(statement)
        return _NoRows()


def compiled(statement: Any) -> str:
    return str(
        statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    )


async def list_queries(
    *,
    user_id: int,
    is_admin: bool,
    filters: dict[str, Any],
    offset: int,
    limit: int,
    conversation_ids: list[int],
) -> dict[str, str]:
    """``{"count": sql, "page": sql, "files": sql}`` as the list endpoint would run them."""
    from app.auth.models import User
    from app.conversations.service import files_by_conversation
    from app.executions import listing
    from app.executions.models import ExecutionStatus

    user = User(id=user_id, username="bench", is_admin=is_admin)
    status = filters.get("status")
    execution_filters = listing.ExecutionFilters(
        agent_id=filters.get("agent_id"),
        status=ExecutionStatus(status) if status else None,
        dataset_id=filters.get("dataset_id"),
    )
    queries: dict[str, str] = {}
    recorder = RecordingSession()
    await listing.count_executions(recorder, user, execution_filters)  # type: ignore[arg-type]
    queries["count"] = compiled(recorder.statements[-1])
    await listing.list_executions(
        recorder,  # type: ignore[arg-type]
        user,
        execution_filters,
        offset=offset,
        limit=limit,
    )
    queries["page"] = compiled(recorder.statements[-1])
    if conversation_ids:
        await files_by_conversation(recorder, conversation_ids)  # type: ignore[arg-type]
        queries["files"] = compiled(recorder.statements[-1])
    return queries
