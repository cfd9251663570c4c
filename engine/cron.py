"""Cron schedules for triggers: validation and fire times, DST-correct. Pure: no DB, no clock.

An expression has 5 fields (minute hour day-of-month month day-of-week) or 6 with
seconds first (``*/2 * * * * *``), or is one of the aliases (``@hourly``, ``@daily``...).
It is read in the trigger's IANA time zone; fire times are returned as aware UTC.

Wall-clock times that a DST change skips or repeats follow cron's usual rule (the one
Vixie cron and systemd share in spirit):

- an expression with a fixed hour (``30 2 * * *``) fires *once* a day: a time in the
  spring-forward gap fires at the same offset after the jump (02:30 -> 03:30), a time in
  the fall-back overlap fires at its first occurrence only;
- an expression firing every hour (``*/15 * * * *``) follows elapsed time: it skips the
  gap (those instants do not exist) and fires in both passes of the repeated hour.

croniter walks the naive wall clock; :mod:`zoneinfo` maps each wall time to instants.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

DEFAULT_TIMEZONE = "UTC"
FIELD_NAMES = ("second", "minute", "hour", "day-of-month", "month", "day-of-week")
FIELD_RANGES = ("0-59", "0-59", "0-23", "1-31", "1-12 or JAN-DEC", "0-7 or SUN-SAT")
MISFIRE_POLICIES = ("fire_once", "skip")
ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# Wider than any DST shift on record (2 h): around a transition the wall clock and the
# instants it maps to can disagree in order by at most this much.
_WINDOW = timedelta(hours=3)
# Bounds one search (a 1-second schedule scanning two windows); never reached otherwise.
_MAX_STEPS = 100_000
# The reference instant validation computes a first fire time from.
_EPOCH = datetime(2000, 1, 1)


class InvalidCron(ValueError):
    """A cron expression or time zone that cannot be used; ``field`` is ``cron`` or ``timezone``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def load_timezone(name: str) -> ZoneInfo:
    """The IANA zone ``name``, or InvalidCron saying why not."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidCron("timezone", "must be an IANA time zone name such as 'Europe/Berlin'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidCron(
            "timezone", f"unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin'"
        ) from None


def _normalize(expression: str) -> str:
    text = " ".join(expression.split())
    if text.startswith("@"):
        alias = ALIASES.get(text.lower())
        if alias is None:
            known = ", ".join(sorted(ALIASES))
            raise InvalidCron("cron", f"unsupported alias {text!r}; use one of {known}")
        return alias
    return text


def _explain(fields: list[str], exc: Exception) -> str:
    """Which field of an invalid expression is wrong, tried one field at a time."""
    names = FIELD_NAMES[-len(fields) :]
    ranges = FIELD_RANGES[-len(fields) :]
    for i, value in enumerate(fields):
        alone = " ".join(value if j == i else "*" for j in range(len(fields)))
        try:
            croniter(alone, _EPOCH, second_at_beginning=len(fields) == 6).get_next(datetime)
        except (ValueError, KeyError, TypeError) as field_exc:
            return (
                f"{names[i]} field {value!r} is not valid ({_reason(field_exc)}); "
                f"allowed: {ranges[i]}, with * , - /"
            )
    return f"invalid cron expression {' '.join(fields)!r}: {_reason(exc)}"


def _reason(exc: Exception) -> str:
    # croniter prefixes its messages with the expression in brackets.
    return re.sub(r"^\[.*?\]\s*(is\s+)?", "", str(exc)) or "not acceptable"


@dataclass(frozen=True)
class CronSchedule:
    """A validated cron expression in a time zone. Build it with :meth:`parse`."""

    expression: str
    timezone: str = DEFAULT_TIMEZONE

    @classmethod
    def parse(cls, expression: str, timezone: str = DEFAULT_TIMEZONE) -> CronSchedule:
        """Validate ``expression`` and ``timezone``; InvalidCron says which and why."""
        if not isinstance(expression, str) or not expression.strip():
            raise InvalidCron("cron", "must be a cron expression such as '*/5 * * * *'")
        text = _normalize(expression)
        fields = text.split(" ")
        if len(fields) not in (5, 6):
            raise InvalidCron(
                "cron",
                f"expected 5 fields (minute hour day-of-month month day-of-week) or 6 with "
                f"seconds first, got {len(fields)}",
            )
        load_timezone(timezone)
        schedule = cls(text, timezone)
        try:
            croniter(text, _EPOCH, second_at_beginning=schedule.has_seconds).get_next(datetime)
        except (ValueError, KeyError, TypeError) as exc:  # CroniterError subclasses ValueError
            if "failed to find next date" in str(exc):
                raise InvalidCron("cron", f"{text!r} never fires (no such date)") from None
            raise InvalidCron("cron", _explain(fields, exc)) from None
        return schedule

    @property
    def has_seconds(self) -> bool:
        """True for a 6-field expression (seconds first)."""
        return len(self.expression.split(" ")) == 6

    @cached_property
    def zone(self) -> ZoneInfo:
        return load_timezone(self.timezone)

    @cached_property
    def every_hour(self) -> bool:
        """True when the hour field matches every hour: such schedules follow elapsed time."""
        hour = self.expression.split(" ")[2 if self.has_seconds else 1]
        return hour in {"*", "*/1", "0-23", "0-23/1"}

    def _iter(self, start: datetime, *, backwards: bool = False) -> croniter:
        return croniter(
            self.expression, start, is_prev=backwards, second_at_beginning=self.has_seconds
        )

    def instants(self, wall: datetime) -> list[datetime]:
        """The UTC instants at which the naive local wall time ``wall`` fires (0, 1 or 2)."""
        first = wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        second = wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC)
        exists = first.astimezone(self.zone).replace(tzinfo=None) == wall
        if not exists:  # in a spring-forward gap
            # fold=0 reads the wall time with the offset before the jump: 02:30 -> 03:30.
            return [] if self.every_hour else [first]
        if first != second and self.every_hour:  # in a fall-back overlap
            return [first, second]
        return [first]

    def _near_transition(self, moment: datetime) -> bool:
        offsets = {
            (moment + delta).astimezone(self.zone).utcoffset() for delta in (-_WINDOW, _WINDOW)
        }
        offsets.add(moment.astimezone(self.zone).utcoffset())
        return len(offsets) > 1

    def _local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone).replace(tzinfo=None)

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after the aware datetime ``after`` (aware UTC)."""
        after = _utc(after)
        start = self._local(after)
        if self._near_transition(after):
            start -= _WINDOW  # a wall time before ours may map to a later instant
        iterator = self._iter(start)
        best: datetime | None = None
        limit: datetime | None = None
        for _ in range(_MAX_STEPS):
            wall = iterator.get_next(datetime)
            if limit is not None and wall > limit:
                break
            for instant in self.instants(wall):
                if instant > after and (best is None or instant < best):
                    best = instant
                    # Away from a transition instants keep wall-clock order: stop at once.
                    limit = wall + _WINDOW if self._near_transition(instant) else wall
        if best is None:
            raise InvalidCron("cron", f"{self.expression!r} found no fire time after {after}")
        return best

    def latest_at_or_before(self, moment: datetime) -> datetime | None:
        """The last fire time at or before the aware datetime ``moment``, if any is near."""
        moment = _utc(moment)
        start = self._local(moment) + timedelta(seconds=1)  # croniter's prev is exclusive
        if self._near_transition(moment):
            start += _WINDOW
        iterator = self._iter(start, backwards=True)
        best: datetime | None = None
        limit: datetime | None = None
        for _ in range(_MAX_STEPS):
            try:
                wall = iterator.get_prev(datetime)
            except ValueError:  # nothing earlier
                break
            if limit is not None and wall < limit:
                break
            for instant in self.instants(wall):
                if instant <= moment and (best is None or instant > best):
                    best = instant
                    limit = wall - _WINDOW if self._near_transition(instant) else wall
        return best


@dataclass(frozen=True)
class FirePlan:
    """What one due trigger does now: fire for ``fire_for`` (or nothing) and move on."""

    fire_for: datetime | None
    next_fire_at: datetime
    missed: bool  # the occurrence that was due is not the latest, or is late past the grace


def plan_fire(
    schedule: CronSchedule,
    due: datetime,
    now: datetime,
    misfire: str = "fire_once",
    grace: timedelta = timedelta(seconds=10),
) -> FirePlan:
    """Decide a due trigger's fire: ``due`` is its stored next_fire_at (<= ``now``).

    On time, the due occurrence fires. After downtime (later occurrences also passed, or
    the latest is more than ``grace`` late), ``fire_once`` fires one execution for the
    latest missed occurrence and ``skip`` fires nothing. Either way the next fire time
    is the first occurrence after ``now``.
    """
    if misfire not in MISFIRE_POLICIES:
        raise ValueError(f"misfire must be one of {', '.join(MISFIRE_POLICIES)}")
    due, now = _utc(due), _utc(now)
    latest = schedule.latest_at_or_before(now)
    if latest is None or latest < due:
        latest = due  # the stored time is itself the occurrence
    late = now - latest > grace
    missed = latest > due or late
    next_fire_at = schedule.next_after(now)
    if missed and misfire == "skip" and late:
        return FirePlan(None, next_fire_at, True)
    return FirePlan(latest, next_fire_at, missed)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("an aware datetime is required")
    return moment.astimezone(UTC)
