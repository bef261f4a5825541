"""The SQL the list endpoint runs, compiled from the service's own statement builder.

``listing.page_query`` builds the one statement a list page runs: the page, its capped count
and each execution's files. (Past ``EXACT_COUNT_LIMIT`` the endpoint also asks the planner for
an estimate with a plain EXPLAIN, which plans and runs nothing.) It is compiled here for
PostgreSQL with its parameters inlined, ready for EXPLAIN ANALYZE. The API process runs the same
builder, so the same SQL (as long as both load the same version of app/).
"""

from typing import Any

from sqlalchemy.dialects import postgresql


def compiled(statement: Any) -> str:
    return str(
        statement.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})
    )


def list_queries(
    *,
    user_id: int,
    is_admin: bool,
    filters: dict[str, Any],
    offset: int,
    limit: int,
) -> dict[str, str]:
    """``{"page": sql}`` as the list endpoint would run it."""
    from app.executions import listing

    shape = {
        "admin": is_admin,
        "agent": filters.get("agent_id") is not None,
        "status": filters.get("status") is not None,
        "dataset": filters.get("dataset_id") is not None,
    }
    values: dict[str, Any] = {k: v for k, v in filters.items() if v is not None}
    if not is_admin:
        values["user_id"] = user_id
    page = listing.page_query(**shape).params(
        **values,
        offset=offset,
        limit=limit + 1,
        count_limit=listing.capped_count_limit(offset, limit),
        max_field_bytes=64 * 1024,
    )
    return {"page": compiled(page)}
