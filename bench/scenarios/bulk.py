"""Filling the scratch database with many executions for the list scenario, in two INSERT …
SELECT statements (a conversation per execution, as the foreign keys want).

Rows are spread over 5 agents on 3 datasets, 4 users (the admin, the non-admin bench user and
two more) and the four statuses (90 % finished, 7 % failed, 2 % pending, 1 % in progress),
one a second going back in time, older than anything the other scenarios created. Foreign-key
triggers are skipped (``session_replication_role = replica``): the rows are consistent by
construction and checking 3 million references would only slow the load.
"""

import time
from typing import Any

from bench.context import BenchRun

AGENTS = 5
USERS = 4

CONVERSATIONS = """
INSERT INTO conversations (id, agent_id, user_id, locked, created_at)
SELECT $1::int + i,
       ($2::int[])[1 + i % 5],
       ($3::int[])[1 + (i / 5) % 4],
       true,
       now() - interval '1 day' - ($4::int - i) * interval '1 second'
FROM generate_series(1, $4::int) AS i
"""

EXECUTIONS = """
INSERT INTO agentic_executions (
    id, agent_id, dataset_id, user_id, execution_key, conversation_id, status, input, result,
    failure_code, failure_explanation, attempts, usage, started_at, finished_at
)
SELECT $5::int + i,
       ($2::int[])[1 + i % 5],
       (SELECT dataset_id FROM agents WHERE id = ($2::int[])[1 + i % 5]),
       ($3::int[])[1 + (i / 5) % 4],
       'structured-task',
       $1::int + i,
       s.status,
       jsonb_build_object('instructions', 'Bulk task ' || i, 'output_schema', null),
       CASE WHEN s.status = 'finished' THEN jsonb_build_object('summary', 'done ' || i) END,
       CASE WHEN s.status = 'failed' THEN 'runtime_error' END,
       CASE WHEN s.status = 'failed' THEN 'ModelHTTPError: status_code: 500' END,
       CASE WHEN s.status = 'pending' THEN 0 ELSE 1 END,
       CASE WHEN s.status IN ('finished', 'failed')
            THEN '{"requests": 1, "input_tokens": 300, "output_tokens": 20}'::jsonb END,
       s.started_at,
       CASE WHEN s.status IN ('finished', 'failed') THEN s.started_at + interval '3 seconds' END
FROM (
    SELECT i,
           CASE WHEN (i * 37) % 100 < 90 THEN 'finished'
                WHEN (i * 37) % 100 < 97 THEN 'failed'
                WHEN (i * 37) % 100 < 99 THEN 'pending'
                ELSE 'in_progress' END AS status,
           now() - interval '1 day' - ($4::int - i) * interval '1 second' AS started_at
    FROM generate_series(1, $4::int) AS i
) AS s
"""

RESEQUENCE = """
SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))
"""


async def load(bench: BenchRun, rows: int) -> dict[str, Any]:
    """Add ``rows`` executions; which agents, datasets and users they belong to."""
    started = time.perf_counter()
    second_dataset, agent_1 = await bench.create_agent("bulk 1")
    _, agent_2 = await bench.create_agent("bulk 2", second_dataset)
    third_dataset, agent_3 = await bench.create_agent("bulk 3")
    _, agent_4 = await bench.create_agent("bulk 4", third_dataset)
    agents = [bench.agent_id, agent_1, agent_2, agent_3, agent_4]
    async with bench.pool.acquire() as connection, connection.transaction():
        admin_id = await connection.fetchval("SELECT id FROM users WHERE username = 'bench'")
        extra = await connection.fetch(
            "INSERT INTO users (username, is_admin, created_at) "
            "VALUES ('bench-bulk-1', false, now()), ('bench-bulk-2', false, now()) RETURNING id"
        )
        users = [admin_id, bench.user_id, *(r["id"] for r in extra)]
        conversation_base = await connection.fetchval(
            "SELECT coalesce(max(id), 0) FROM conversations"
        )
        execution_base = await connection.fetchval(
            "SELECT coalesce(max(id), 0) FROM agentic_executions"
        )
        await connection.execute("SET LOCAL session_replication_role = replica")
        await connection.execute("SET LOCAL synchronous_commit = off")
        await connection.execute(CONVERSATIONS, conversation_base, agents, users, rows)
        await connection.execute(EXECUTIONS, conversation_base, agents, users, rows, execution_base)
        for table in ("conversations", "agentic_executions"):
            await connection.execute(RESEQUENCE.format(table=table))
    inserted = time.perf_counter()
    # Steady state, as autovacuum would leave it: statistics and the visibility map.
    for table in ("conversations", "agentic_executions"):
        await bench.pool.execute(f"VACUUM ANALYZE {table}")
    size = await bench.pool.fetchval(
        "SELECT pg_size_pretty(pg_total_relation_size('agentic_executions'))"
    )
    return {
        "rows": rows,
        "insert_s": round(inserted - started, 1),
        "vacuum_analyze_s": round(time.perf_counter() - inserted, 1),
        "table_size": size,
        "agents": agents,
        "datasets": [bench.dataset_id, second_dataset, third_dataset],
        "users": users,
    }
