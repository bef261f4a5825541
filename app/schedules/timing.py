"""When a schedule ticks: its cron expression read in its time zone (cronsim), and the
missed-tick policy.

A cron expression is five fields (minute, hour, day of month, month, day of week) or one of
``@yearly @annually @monthly @weekly @daily @midnight @hourly``; it is read in the schedule's
IANA time zone, so that ``0 2 * * *`` is 2:00 local time on both sides of a daylight-saving
change. At the change cronsim does what Debian's cron does: a time skipped in spring (2:30 on
the night clocks jump from 2:00 to 3:00) ticks once, just after the jump; a time that happens
twice in autumn ticks once, the first time; a job with a wildcard hour ticks by the clock
(every real hour).

Missed ticks (the whole service was down): the latest tick due runs once when the service is
back, if it is less than one period late (before the tick after it is due); every earlier one
is skipped, and the skip is recorded (``outcome = skipped``), never run.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

MAX_CRON_LENGTH = 100
MAX_TIMEZONE_LENGTH = 64
# Counting the ticks a long outage skipped stops here (the record says "at least"): each step
# costs ~3.4 us, and after a long outage every schedule counts once (a minutely one, down a
# week, has 10,080 to count): 3.4 ms a schedule at most, not 34.
MAX_COUNTED_SKIPS = 1_000

NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class BadTiming(ValueError):
    """A cron expression or a time zone that cannot be used; the message says why."""


def parse_timezone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (``Europe/Warsaw``, ``UTC``), else BadTiming."""
    if not name or len(name) > MAX_TIMEZONE_LENGTH or "\x00" in name:
        raise BadTiming(f"Unknown time zone {name[:MAX_TIMEZONE_LENGTH]!r}.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        # ValueError: a key that is no zone name at all (a path, "..").
        raise BadTiming(
            f"Unknown time zone {name!r}: use an IANA name such as 'Europe/Warsaw' or 'UTC'."
        ) from None


def _five_fields(cron: str) -> str:
    expression = " ".join(cron.split())
    return NICKNAMES.get(expression.lower(), expression)


def check_cron(cron: str) -> str:
    """The expression as stored (whitespace normalised), else BadTiming saying what is wrong.
    Five fields only: cronsim's optional sixth (seconds) is refused, so that no schedule ticks
    more than once a minute."""
    if len(cron) > MAX_CRON_LENGTH or "\x00" in cron:
        raise BadTiming(f"At most {MAX_CRON_LENGTH} characters.")
    expression = _five_fields(cron)
    if len(expression.split()) != 5:
        raise BadTiming(
            "Expected five fields (minute hour day-of-month month day-of-week), "
            "as in '0 2 * * *', or one of " + ", ".join(NICKNAMES) + "."
        )
    try:
        ticks = CronSim(expression, datetime.now(UTC))
        # An expression that never matches (Feb 31) fails here, not at its first tick.
        next(ticks)
    except (CronSimError, StopIteration) as exc:
        raise BadTiming(f"Not a valid cron expression: {exc or 'it never matches'}.") from None
    return " ".join(cron.split())


def describe(cron: str) -> str:
    """``At 02:00 every day``: the expression in words (cronsim's)."""
    return str(CronSim(_five_fields(cron), datetime.now(UTC)).explain())


@dataclass(frozen=True)
class Timing:
    cron: str
    zone: ZoneInfo

    @classmethod
    def of(cls, cron: str, timezone: str) -> "Timing":
        return cls(_five_fields(cron), parse_timezone(timezone))

    def _ticks(self, after: datetime, *, reverse: bool = False) -> Iterator[datetime]:
        for tick in CronSim(self.cron, after.astimezone(self.zone), reverse=reverse):
            yield tick.astimezone(UTC)

    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after ``moment`` (UTC)."""
        return next(self._ticks(moment))

    def latest_until(self, moment: datetime) -> datetime:
        """The last tick at or before ``moment`` (UTC)."""
        return next(self._ticks(moment + timedelta(microseconds=1), reverse=True))


@dataclass(frozen=True)
class DueTick:
    """What a due schedule does now: run the tick ``run_at`` (unless it is at or after the
    schedule's end), having skipped ``skipped`` earlier ticks from ``skipped_from``; then wait
    for ``next_run_at`` (None: past its end)."""

    run_at: datetime | None
    skipped: int
    skipped_from: datetime | None
    next_run_at: datetime | None


def _before_end(moment: datetime, end_at: datetime | None) -> datetime | None:
    return moment if end_at is None or moment < end_at else None


def plan_due_tick(timing: Timing, due: datetime, now: datetime, end_at: datetime | None) -> DueTick:
    """The schedule's tick ``due`` (its ``next_run_at``, at or before ``now``) under the
    missed-tick policy (module docstring)."""
    following = timing.next_after(due)
    if following > now:
        run_at: datetime = due
        skipped, skipped_from = 0, None
    else:
        # More than one period late: only the latest tick due runs.
        run_at = timing.latest_until(now)
        skipped_from = due
        skipped = 0
        for tick in timing._ticks(due - timedelta(microseconds=1)):
            if tick >= run_at or skipped >= MAX_COUNTED_SKIPS:
                break
            skipped += 1
        following = timing.next_after(run_at)
    return DueTick(
        run_at=_before_end(run_at, end_at),
        skipped=skipped,
        skipped_from=skipped_from,
        next_run_at=_before_end(following, end_at),
    )


def first_run_at(timing: Timing, now: datetime, end_at: datetime | None) -> datetime | None:
    """A new (or resumed, or re-timed) schedule's first tick: the first after ``now``."""
    return _before_end(timing.next_after(now), end_at)
