"""What a run used, as stored on its execution and shown in its JSON.

A model's answer says how many tokens it used, and a provider may say anything there: counts
are kept within PostgreSQL's bigint (so daily sums in SQL and the metrics never overflow), a
negative count as 0, a cost that is not a finite number as unknown. An answer without usage
counts as a request with no tokens (pydantic-ai's ``unmeasured_requests``).
"""

import math
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field
from pydantic_ai import RunUsage

# PostgreSQL's bigint: what one count may reach.
MAX_COUNT = 2**63 - 1


def _count(value: Any) -> int:
    return min(max(int(value or 0), 0), MAX_COUNT)


def finite_cost(value: Decimal | float | None) -> float | None:
    """A cost as JSON can hold it: None when unknown, or not a finite, positive number."""
    if value is None:
        return None
    cost = float(value)
    return cost if math.isfinite(cost) and cost >= 0 else None


def usage_dict(usage: RunUsage) -> dict[str, Any]:
    """The JSON stored in ``agentic_executions.usage``."""
    return {
        "requests": _count(usage.requests),
        "input_tokens": _count(usage.input_tokens),
        "output_tokens": _count(usage.output_tokens),
        "cost": finite_cost(usage.cost),
    }


def run_usage(stored: dict[str, Any] | None) -> RunUsage:
    """A stored usage as pydantic-ai's, to go on counting from (an execution's next attempt)."""
    stored = stored or {}
    cost = stored.get("cost")
    return RunUsage(
        requests=_count(stored.get("requests")),
        input_tokens=_count(stored.get("input_tokens")),
        output_tokens=_count(stored.get("output_tokens")),
        cost=None if cost is None else Decimal(str(cost)),
    )


class ExecutionUsage(BaseModel):
    """What the execution's run used so far: zeros until it ends (stored then, also when it
    failed)."""

    requests: int = Field(default=0, description="Model requests made.", examples=[3])
    input_tokens: int = Field(default=0, examples=[2150])
    output_tokens: int = Field(default=0, examples=[312])
    cost: float | None = Field(
        default=None,
        description="USD, as genai-prices prices the model; null when its price is unknown.",
        examples=[0.00086],
    )

    @classmethod
    def of(cls, stored: dict[str, Any] | None) -> "ExecutionUsage":
        if not stored:
            return cls()
        return cls(
            requests=_count(stored.get("requests")),
            input_tokens=_count(stored.get("input_tokens")),
            output_tokens=_count(stored.get("output_tokens")),
            cost=finite_cost(stored.get("cost")),
        )
