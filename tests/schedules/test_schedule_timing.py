"""A schedule's cron read in its time zone, across both daylight-saving changes, and the
missed-tick policy (app/schedules/timing.py)."""

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.schedules.timing import (
    MAX_COUNTED_SKIPS,
    BadTiming,
    Timing,
    check_cron,
    parse_timezone,
    plan_due_tick,
)

WARSAW = ZoneInfo("Europe/Warsaw")


def ticks(timing: Timing, start: datetime, end: datetime) -> list[datetime]:
    found, moment = [], start
    while (moment := timing.next_after(moment)) < end:
        found.append(moment)
    return found


def local(moments: list[datetime]) -> list[str]:
    return [m.astimezone(WARSAW).strftime("%m-%d %H:%M %Z") for m in moments]


def test_a_daily_tick_is_at_2_00_local_on_both_sides_of_the_spring_change() -> None:
    # 2027-03-28: clocks jump from 2:00 to 3:00 in Warsaw; 2:00 does not exist that night.
    timing = Timing.of("0 2 * * *", "Europe/Warsaw")
    found = ticks(
        timing, datetime(2027, 3, 26, 12, tzinfo=UTC), datetime(2027, 3, 30, 12, tzinfo=UTC)
    )
    # One tick a night, none lost: the skipped 2:00 runs just after the jump, at 3:00 CEST.
    assert local(found) == [
        "03-27 02:00 CET",
        "03-28 03:00 CEST",
        "03-29 02:00 CEST",
        "03-30 02:00 CEST",
    ]
    assert [m.hour for m in found] == [
        1,
        1,
        0,
        0,
    ]  # UTC: the offset changed, the local hour did not


def test_a_daily_tick_is_at_2_00_local_once_on_both_sides_of_the_autumn_change() -> None:
    # 2027-10-31: clocks go back from 3:00 to 2:00; 2:00-3:00 happens twice that night.
    timing = Timing.of("30 2 * * *", "Europe/Warsaw")
    found = ticks(
        timing, datetime(2027, 10, 29, 12, tzinfo=UTC), datetime(2027, 11, 2, 12, tzinfo=UTC)
    )
    # Once, not twice, on the night the hour repeats.
    assert local(found) == [
        "10-30 02:30 CEST",
        "10-31 02:30 CEST",
        "11-01 02:30 CET",
        "11-02 02:30 CET",
    ]


def test_an_hourly_tick_follows_the_clock_through_both_changes() -> None:
    timing = Timing.of("15 * * * *", "Europe/Warsaw")
    spring = ticks(
        timing, datetime(2027, 3, 27, 22, tzinfo=UTC), datetime(2027, 3, 28, 3, tzinfo=UTC)
    )
    autumn = ticks(
        timing, datetime(2027, 10, 30, 22, tzinfo=UTC), datetime(2027, 10, 31, 3, tzinfo=UTC)
    )
    # Every real hour, one tick: 5 in 5 hours on each night (no hour doubled or lost).
    for found in (spring, autumn):
        assert len(found) == 5
        assert all(b - a == timedelta(hours=1) for a, b in itertools.pairwise(found))


def test_a_tick_less_than_one_period_late_runs_and_an_older_one_is_skipped() -> None:
    timing = Timing.of("0 * * * *", "UTC")
    due = datetime(2027, 1, 1, 10, tzinfo=UTC)

    late = plan_due_tick(timing, due, due + timedelta(minutes=59), None)
    assert (late.run_at, late.skipped, late.next_run_at) == (due, 0, due + timedelta(hours=1))

    down = plan_due_tick(timing, due, due + timedelta(hours=3, minutes=20), None)
    # 10:00, 11:00 and 12:00 skipped; 13:00, less than one period late, runs once.
    assert (down.run_at, down.skipped, down.skipped_from) == (due + timedelta(hours=3), 3, due)
    assert down.next_run_at == due + timedelta(hours=4)


def test_no_tick_at_or_after_the_end() -> None:
    timing = Timing.of("0 * * * *", "UTC")
    due = datetime(2027, 1, 1, 10, tzinfo=UTC)
    plan = plan_due_tick(timing, due, due, end_at=due + timedelta(minutes=30))
    assert (plan.run_at, plan.next_run_at) == (due, None)
    assert plan_due_tick(timing, due, due, end_at=due).run_at is None


@pytest.mark.parametrize(
    "cron", ["61 * * * *", "* * *", "0 2 * * * *", "0 0 31 2 *", "", "* * * * \x00", "x" * 200]
)
def test_a_bad_cron_expression_is_refused_with_a_reason(cron: str) -> None:
    with pytest.raises(BadTiming) as refused:
        check_cron(cron)
    assert str(refused.value)


@pytest.mark.parametrize(
    "name", ["Mars/Olympus", "../../etc/passwd", "/etc/localtime", "", "UTC\x00"]
)
def test_an_unknown_time_zone_is_refused(name: str) -> None:
    with pytest.raises(BadTiming, match="time zone"):
        parse_timezone(name)


def test_nicknames_and_spacing_are_read() -> None:
    assert check_cron("  0   2 * * *  ") == "0 2 * * *"
    assert Timing.of("@hourly", "UTC").next_after(
        datetime(2027, 1, 1, 10, 5, tzinfo=UTC)
    ) == datetime(2027, 1, 1, 11, tzinfo=UTC)


def test_a_long_outage_counts_its_skipped_ticks_up_to_a_bound() -> None:
    timing = Timing.of("* * * * *", "UTC")
    due = datetime(2027, 1, 1, tzinfo=UTC)
    # A minutely schedule down for a week: 10,080 ticks missed, one runs.
    plan = plan_due_tick(timing, due, due + timedelta(days=7, seconds=30), None)
    assert plan.run_at == due + timedelta(days=7)
    assert plan.skipped == MAX_COUNTED_SKIPS
    assert plan.skipped_from == due
