"""engine.cron: validation messages, fire times in time zones across DST, misfire plans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.cron import CronSchedule, InvalidCron, plan_fire


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def fires(schedule: CronSchedule, after: datetime, count: int) -> list[datetime]:
    out = []
    for _ in range(count):
        after = schedule.next_after(after)
        out.append(after)
    return out


def local(schedule: CronSchedule, moments: list[datetime]) -> list[str]:
    return [m.astimezone(schedule.zone).strftime("%m-%d %H:%M%z") for m in moments]


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "must be a cron expression"),
        ("* * *", "expected 5 fields"),
        ("* * * * * * *", "got 7"),
        ("61 * * * *", "minute field '61' is not valid"),
        ("* 24 * * *", "hour field '24'"),
        ("* * * 13 *", "month field '13'"),
        ("* * * * 9", "day-of-week field '9'"),
        ("*/0 * * * *", "minute field '*/0'"),
        ("60 * * * * *", "second field '60'"),
        ("a b c d e", "minute field 'a'"),
        ("0 0 30 2 *", "never fires"),
        ("@reboot", "unsupported alias '@reboot'"),
    ],
)
def test_invalid_expression_says_why(expression: str, message: str) -> None:
    with pytest.raises(InvalidCron) as exc:
        CronSchedule.parse(expression)
    assert exc.value.field == "cron"
    assert message in exc.value.message


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "utc+2", "../etc/passwd"])
def test_invalid_timezone_says_why(zone: str) -> None:
    with pytest.raises(InvalidCron) as exc:
        CronSchedule.parse("* * * * *", zone)
    assert exc.value.field == "timezone"
    assert "IANA" in exc.value.message


def test_valid_expressions_and_aliases() -> None:
    assert CronSchedule.parse("*/5 * * * *").expression == "*/5 * * * *"
    assert CronSchedule.parse("  0   9 * *  MON-FRI ").expression == "0 9 * * MON-FRI"
    assert CronSchedule.parse("@hourly").expression == "0 * * * *"
    assert CronSchedule.parse("@daily", "Europe/Berlin").timezone == "Europe/Berlin"
    assert CronSchedule.parse("*/2 * * * * *").has_seconds


# -- fire times ------------------------------------------------------------------------------


def test_next_after_is_strictly_after() -> None:
    s = CronSchedule.parse("*/5 * * * *")
    assert s.next_after(utc(2024, 1, 1, 12, 0)) == utc(2024, 1, 1, 12, 5)
    assert s.next_after(utc(2024, 1, 1, 12, 4, 59)) == utc(2024, 1, 1, 12, 5)


def test_six_fields_have_seconds_first() -> None:
    s = CronSchedule.parse("*/2 * * * * *")
    after = utc(2024, 1, 1, 0, 0, 0).replace(microsecond=500_000)
    assert fires(s, after, 3) == [
        utc(2024, 1, 1, 0, 0, 2),
        utc(2024, 1, 1, 0, 0, 4),
        utc(2024, 1, 1, 0, 0, 6),
    ]
    every = CronSchedule.parse("* * * * * *")
    assert every.next_after(after) == utc(2024, 1, 1, 0, 0, 1)


def test_time_zone_is_applied() -> None:
    s = CronSchedule.parse("0 9 * * *", "America/New_York")
    assert s.next_after(utc(2024, 1, 15)) == utc(2024, 1, 15, 14)  # 09:00 EST
    assert s.next_after(utc(2024, 7, 15)) == utc(2024, 7, 15, 13)  # 09:00 EDT


def test_daily_job_keeps_local_time_across_dst() -> None:
    s = CronSchedule.parse("0 9 * * *", "Europe/Berlin")
    got = fires(s, utc(2024, 3, 29), 4)
    assert local(s, got) == [
        "03-29 09:00+0100",
        "03-30 09:00+0100",
        "03-31 09:00+0200",
        "04-01 09:00+0200",
    ]


def test_berlin_spring_forward_fixed_time_in_gap_fires_once_after_the_jump() -> None:
    # 2024-03-31 02:00 CET -> 03:00 CEST: 02:30 does not exist that day.
    s = CronSchedule.parse("30 2 * * *", "Europe/Berlin")
    got = fires(s, utc(2024, 3, 30, 12), 3)
    assert got == [utc(2024, 3, 31, 1, 30), utc(2024, 4, 1, 0, 30), utc(2024, 4, 2, 0, 30)]
    assert local(s, got)[0] == "03-31 03:30+0200"


def test_berlin_spring_forward_hourly_skips_the_missing_hour() -> None:
    s = CronSchedule.parse("*/30 * * * *", "Europe/Berlin")
    got = fires(s, utc(2024, 3, 30, 23, 45), 4)
    assert local(s, got) == [
        "03-31 01:00+0100",
        "03-31 01:30+0100",
        "03-31 03:00+0200",
        "03-31 03:30+0200",
    ]
    assert [b - a for a, b in zip(got, got[1:], strict=False)] == [timedelta(minutes=30)] * 3


def test_berlin_fall_back_fixed_time_fires_once() -> None:
    # 2024-10-27 03:00 CEST -> 02:00 CET: 02:30 happens twice; a daily job runs once.
    s = CronSchedule.parse("30 2 * * *", "Europe/Berlin")
    got = fires(s, utc(2024, 10, 26, 12), 2)
    assert got == [utc(2024, 10, 27, 0, 30), utc(2024, 10, 28, 1, 30)]


def test_berlin_fall_back_hourly_follows_elapsed_time() -> None:
    s = CronSchedule.parse("0 * * * *", "Europe/Berlin")
    got = fires(s, utc(2024, 10, 26, 23, 30), 4)
    assert got == [utc(2024, 10, 27, h) for h in range(4)]
    assert local(s, got) == [
        "10-27 02:00+0200",
        "10-27 02:00+0100",
        "10-27 03:00+0100",
        "10-27 04:00+0100",
    ]


def test_new_york_spring_forward() -> None:
    # 2024-03-10 02:00 EST -> 03:00 EDT.
    daily = CronSchedule.parse("30 2 * * *", "America/New_York")
    assert daily.next_after(utc(2024, 3, 9, 12)) == utc(2024, 3, 10, 7, 30)  # 03:30 EDT
    hourly = CronSchedule.parse("15 * * * *", "America/New_York")
    got = fires(hourly, utc(2024, 3, 10, 6), 3)
    assert local(hourly, got) == ["03-10 01:15-0500", "03-10 03:15-0400", "03-10 04:15-0400"]


def test_new_york_fall_back() -> None:
    # 2024-11-03 02:00 EDT -> 01:00 EST: 01:30 happens twice.
    daily = CronSchedule.parse("30 1 * * *", "America/New_York")
    assert fires(daily, utc(2024, 11, 2, 12), 2) == [
        utc(2024, 11, 3, 5, 30),
        utc(2024, 11, 4, 6, 30),
    ]
    every = CronSchedule.parse("*/30 * * * *", "America/New_York")
    got = fires(every, utc(2024, 11, 3, 4, 45), 6)
    assert [b - a for a, b in zip(got, got[1:], strict=False)] == [timedelta(minutes=30)] * 5


def test_latest_at_or_before() -> None:
    s = CronSchedule.parse("*/5 * * * *")
    assert s.latest_at_or_before(utc(2024, 1, 1, 12, 7)) == utc(2024, 1, 1, 12, 5)
    assert s.latest_at_or_before(utc(2024, 1, 1, 12, 5)) == utc(2024, 1, 1, 12, 5)
    berlin = CronSchedule.parse("0 * * * *", "Europe/Berlin")
    # just after the repeated 02:00 (CET): the latest is that second 02:00, not the first
    assert berlin.latest_at_or_before(utc(2024, 10, 27, 1, 10)) == utc(2024, 10, 27, 1)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError):
        CronSchedule.parse("* * * * *").next_after(datetime(2024, 1, 1))


# -- misfire ---------------------------------------------------------------------------------


def test_on_time_fires_the_due_occurrence() -> None:
    s = CronSchedule.parse("*/5 * * * *")
    plan = plan_fire(s, utc(2024, 1, 1, 12, 5), utc(2024, 1, 1, 12, 5, 1))
    assert plan.fire_for == utc(2024, 1, 1, 12, 5)
    assert plan.next_fire_at == utc(2024, 1, 1, 12, 10)
    assert not plan.missed


def test_downtime_fire_once_fires_the_latest_missed_occurrence_once() -> None:
    s = CronSchedule.parse("*/5 * * * *")
    plan = plan_fire(s, utc(2024, 1, 1, 12, 5), utc(2024, 1, 1, 13, 2), "fire_once")
    assert plan.fire_for == utc(2024, 1, 1, 13, 0)
    assert plan.next_fire_at == utc(2024, 1, 1, 13, 5)
    assert plan.missed


def test_downtime_skip_fires_nothing_and_moves_on() -> None:
    s = CronSchedule.parse("*/5 * * * *")
    plan = plan_fire(s, utc(2024, 1, 1, 12, 5), utc(2024, 1, 1, 13, 2), "skip")
    assert plan.fire_for is None
    assert plan.next_fire_at == utc(2024, 1, 1, 13, 5)


def test_skip_still_fires_an_occurrence_within_the_grace() -> None:
    s = CronSchedule.parse("*/5 * * * *")
    plan = plan_fire(s, utc(2024, 1, 1, 12, 5), utc(2024, 1, 1, 13, 0, 3), "skip")
    assert plan.fire_for == utc(2024, 1, 1, 13, 0)  # the older ones are skipped
    assert plan.missed


def test_late_single_occurrence_with_skip_is_skipped() -> None:
    s = CronSchedule.parse("0 3 * * *")
    plan = plan_fire(s, utc(2024, 1, 1, 3), utc(2024, 1, 1, 3, 30), "skip")
    assert plan.fire_for is None
    assert plan_fire(s, utc(2024, 1, 1, 3), utc(2024, 1, 1, 3, 30)).fire_for == utc(2024, 1, 1, 3)


def test_unknown_misfire_policy_is_refused() -> None:
    s = CronSchedule.parse("* * * * *")
    with pytest.raises(ValueError):
        plan_fire(s, utc(2024, 1, 1), utc(2024, 1, 1), "later")
