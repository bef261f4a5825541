"""What the schedule routes take and answer."""

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from app.core.schemas import Timestamp
from app.schedules.models import AgenticExecutionSchedule, ScheduleTick
from app.schedules.timing import MAX_CRON_LENGTH, MAX_TIMEZONE_LENGTH, describe

CRON_DESCRIPTION = (
    "Five fields, minute hour day-of-month month day-of-week (`0 2 * * *`: 2:00 every day), "
    "or `@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`; read in `timezone`."
)
TIMEZONE_DESCRIPTION = "An IANA time zone (`Europe/Warsaw`); daylight saving is followed."


class ScheduleIn(BaseModel):
    """A new schedule: the start it repeats (as ``POST .../agentic-executions/`` takes it)
    and when."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "execution_key": "catalog-enrichment",
                    "input": {"additional_instructions": "Products added today."},
                    "cron": "0 2 * * *",
                    "timezone": "Europe/Warsaw",
                }
            ]
        },
    )

    execution_key: str = Field(max_length=100)
    input: dict[str, Any] = Field(
        default_factory=dict,
        description="Validated against the execution type's input now, and again at each tick.",
    )
    cron: str = Field(max_length=MAX_CRON_LENGTH, description=CRON_DESCRIPTION)
    timezone: str = Field(
        default="UTC", max_length=MAX_TIMEZONE_LENGTH, description=TIMEZONE_DESCRIPTION
    )
    enabled: bool = True
    end_at: AwareDatetime | None = Field(
        default=None, description="No tick at or after this time (ISO 8601 with an offset)."
    )
    limits: dict[str, Any] | None = Field(
        default=None, description="As a start's `limits`, applied to each execution."
    )


class ScheduleChange(BaseModel):
    """Any fields of ``ScheduleIn``; those left out keep their value. ``{"enabled": false}``
    pauses, ``{"enabled": true}`` resumes from the next tick after now."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"enabled": False}]})

    execution_key: str | None = Field(default=None, max_length=100)
    input: dict[str, Any] | None = None
    cron: str | None = Field(default=None, max_length=MAX_CRON_LENGTH)
    timezone: str | None = Field(default=None, max_length=MAX_TIMEZONE_LENGTH)
    enabled: bool | None = None
    end_at: AwareDatetime | None = None
    limits: dict[str, Any] | None = None


class ScheduleOut(BaseModel):
    id: int
    agent: int
    user: int = Field(description="The owner: each execution runs as him.")
    execution_key: str
    input: dict[str, Any]
    limits: dict[str, Any] | None
    cron: str
    cron_description: str = Field(examples=["At 02:00 every day"])
    timezone: str
    enabled: bool
    end_at: Timestamp | None
    next_run_at: Timestamp | None = Field(
        description="The next tick (UTC); null when it will not tick again (paused, ended)."
    )
    last_run_at: Timestamp | None = Field(description="The last tick that ran (UTC).")
    last_execution_id: int | None = Field(description="The execution the last tick started.")
    paused_reason: str | None = Field(
        description="Set when the service paused it: `owner_disabled` (its owner's account "
        "was disabled), `agent_not_visible` (its owner may no longer use the agent) or "
        "`tick_error` (starting a tick failed unexpectedly; its tick says more); "
        'cleared by `{"enabled": true}`.'
    )
    created_at: Timestamp
    updated_at: Timestamp
    executions: str = Field(description="The executions it started (the list, filtered).")
    ticks: str = Field(description="Its ticks: started, failed, skipped.")

    @classmethod
    def of(
        cls, schedule: AgenticExecutionSchedule, *, executions: str, ticks: str
    ) -> "ScheduleOut":
        return cls(
            id=schedule.id,
            agent=schedule.agent_id,
            user=schedule.user_id,
            execution_key=schedule.execution_key,
            input=schedule.input,
            limits=schedule.limits,
            cron=schedule.cron,
            cron_description=describe(schedule.cron),
            timezone=schedule.timezone,
            enabled=schedule.enabled,
            end_at=schedule.end_at,
            next_run_at=schedule.next_run_at,
            last_run_at=schedule.last_run_at,
            last_execution_id=schedule.last_execution_id,
            paused_reason=schedule.paused_reason,
            created_at=schedule.created_at,
            updated_at=schedule.updated_at,
            executions=executions,
            ticks=ticks,
        )


class SchedulePage(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[ScheduleOut]


class TickOut(BaseModel):
    tick_at: Timestamp = Field(description="The tick's time (UTC), as the cron gives it.")
    outcome: str = Field(
        description="`started` (an execution), `failed` (a failed execution says why: the "
        "input no longer validates, a quota), `skipped` (no execution; `detail` says why)."
    )
    execution_id: int | None
    detail: str | None
    claimed_at: Timestamp = Field(description="When a worker claimed it.")

    @classmethod
    def of(cls, tick: ScheduleTick) -> "TickOut":
        return cls(
            tick_at=tick.tick_at,
            outcome=tick.outcome,
            execution_id=tick.execution_id,
            detail=tick.detail,
            claimed_at=tick.claimed_at,
        )


class TickPage(BaseModel):
    count: int
    next: str | None
    previous: str | None
    results: list[TickOut]
