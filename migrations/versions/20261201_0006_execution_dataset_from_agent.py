"""an execution inserted without dataset_id takes its agent's (the previous release's INSERT)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 04:30:00.000000

0005 made agentic_executions.dataset_id NOT NULL in the release that started writing it: the
release still running during a rolling deploy (0004's code) inserts executions without it, and
every one of its submissions failed with a NotNullViolation. A BEFORE INSERT trigger fills the
column from the execution's agent when an INSERT leaves it out, so the previous release's
writes work again and the column stays NOT NULL: every execution keeps a dataset, which the
list filtered by dataset relies on (a nullable column would hide the old release's executions
from that list). The head's own INSERT sets the column, and the trigger's WHEN clause skips it
without calling the function.

Expand/contract (deploy/README.md): the trigger may be dropped once no release that omits
dataset_id runs any more, in a release after this one.
"""
from collections.abc import Sequence

from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
CREATE FUNCTION agentic_executions_dataset_from_agent() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    SELECT agents.dataset_id INTO NEW.dataset_id FROM agents WHERE agents.id = NEW.agent_id;
    RETURN NEW;
END
$$
"""
    )
    op.execute(
        "CREATE TRIGGER agentic_executions_dataset_from_agent "
        "BEFORE INSERT ON agentic_executions "
        "FOR EACH ROW WHEN (NEW.dataset_id IS NULL) "
        "EXECUTE FUNCTION agentic_executions_dataset_from_agent()"
    )


def downgrade() -> None:
    op.execute(
        "DROP TRIGGER agentic_executions_dataset_from_agent ON agentic_executions"
    )
    op.execute("DROP FUNCTION agentic_executions_dataset_from_agent()")
