"""Usage limits of an execution: the agent's (set by an admin) and the start request's own
(``limits`` in the body), the stricter of each applying. A run past one ends ``failed`` with
``budget_exceeded`` (workers/run/loop.py), explained by ``exceeded``."""

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_ai import RunUsage, UsageLimits

from app.core.errors import Invalid, field_errors

BUDGET_EXCEEDED = "budget_exceeded"
# What sets a limit, as an explanation names it.
AGENT, EXECUTION = "agent", "execution"


class Limits(BaseModel):
    """Usage limits of one execution; a field left null sets no limit."""

    # Strict: true is no 1, nor "5" a 5, in a budget.
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={"examples": [{"max_model_requests": 20, "max_cost": 0.5}]},
    )

    max_model_requests: int | None = Field(
        default=None,
        gt=0,
        le=1_000_000,
        description="Model requests the run may make (its answers; the failure summary counts).",
    )
    max_total_tokens: int | None = Field(
        default=None,
        gt=0,
        le=2**62,
        description="Input plus output tokens over all of the run's model requests.",
    )
    max_cost: float | None = Field(
        default=None,
        gt=0,
        description="USD, as priced by genai-prices; a model whose price is unknown is not "
        "held to it.",
    )

    @field_validator("max_cost")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("Not a finite number.")
        return value

    @property
    def empty(self) -> bool:
        return all(value is None for value in self.model_dump().values())

    def stored(self) -> dict[str, Any] | None:
        """The JSON stored for these limits: the fields set, or None when none is."""
        return None if self.empty else self.model_dump(exclude_none=True)


def parse_limits(raw: Any, field: str = "limits") -> Limits | None:
    """A request's ``limits`` object, or None when absent or null; else 400 naming the fields
    (``{"limits": {"max_cost": "Input should be greater than 0"}}``)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise Invalid({field: {"detail": "Expected a JSON object."}})
    try:
        limits = Limits.model_validate(raw)
    except ValidationError as exc:
        raise Invalid({field: field_errors(exc.errors())}) from None
    return None if limits.empty else limits


def stored_limits(value: dict[str, Any] | None) -> Limits:
    """Limits as stored on an agent or an execution (validated when written)."""
    return Limits.model_validate(value or {})


@dataclass(frozen=True)
class Budget:
    """The limits a run is held to, each with what set it (``agent`` or ``execution``)."""

    max_model_requests: tuple[int, str] | None = None
    max_total_tokens: tuple[int, str] | None = None
    max_cost: tuple[float, str] | None = None

    @classmethod
    def of(cls, agent: Limits, execution: Limits) -> "Budget":
        """The stricter of the agent's and the execution's limit, field by field."""

        def stricter(name: str) -> Any:
            candidates = [
                (value, source)
                for value, source in (
                    (getattr(agent, name), AGENT),
                    (getattr(execution, name), EXECUTION),
                )
                if value is not None
            ]
            # On a tie the execution's is named: the client set it.
            return min(candidates, key=lambda c: (c[0], c[1] != EXECUTION)) if candidates else None

        return cls(
            max_model_requests=stricter("max_model_requests"),
            max_total_tokens=stricter("max_total_tokens"),
            max_cost=stricter("max_cost"),
        )

    def usage_limits(self, definition_max_requests: int) -> UsageLimits:
        """pydantic-ai's limits for the run: the definition's own cap on requests (a runaway
        loop guard) unless the budget's is lower."""
        requests = definition_max_requests
        if self.max_model_requests is not None:
            requests = min(requests, self.max_model_requests[0])
        return UsageLimits(
            request_limit=requests,
            total_tokens_limit=None if self.max_total_tokens is None else self.max_total_tokens[0],
            cost_limit=None if self.max_cost is None else Decimal(str(self.max_cost[0])),
        )

    def spent(self, usage: RunUsage) -> bool:
        """Whether ``usage`` leaves no room for another model request within the budget."""
        return (
            (self.max_model_requests is not None and usage.requests >= self.max_model_requests[0])
            or (
                self.max_total_tokens is not None and usage.total_tokens >= self.max_total_tokens[0]
            )
            or (
                self.max_cost is not None
                and usage.cost is not None
                and usage.cost >= Decimal(str(self.max_cost[0]))
            )
        )

    def exceeded(self, usage: RunUsage) -> str | None:
        """Which limit ``usage`` reached, said for a user; None when none did (the run then
        stopped on the definition's own cap)."""
        used = _used(usage)
        if self.max_total_tokens is not None:
            limit, source = self.max_total_tokens
            if usage.total_tokens > limit:
                return (
                    f"Budget exceeded: max_total_tokens of the {source} is {limit}; the run "
                    f"used {usage.total_tokens} tokens ({used})."
                )
        if self.max_cost is not None and usage.cost is not None:
            limit_cost, source = self.max_cost
            if usage.cost > Decimal(str(limit_cost)):
                return (
                    f"Budget exceeded: max_cost of the {source} is {limit_cost:g} USD; the run "
                    f"cost {float(usage.cost):.6g} USD ({used})."
                )
        if self.max_model_requests is not None:
            limit, source = self.max_model_requests
            if usage.requests >= limit:
                return (
                    f"Budget exceeded: max_model_requests of the {source} is {limit}; the run "
                    f"made {usage.requests} model requests without finishing ({used})."
                )
        return None


def _used(usage: RunUsage) -> str:
    cost = "cost unknown" if usage.cost is None else f"{float(usage.cost):.6g} USD"
    return (
        f"{usage.requests} requests, {usage.input_tokens} input and {usage.output_tokens} "
        f"output tokens, {cost}"
    )
