"""CloudEvents for ``emit`` and ``listen``: building an event, matching filters, correlating.

Pure functions over plain dicts; where events come from (the database) is the host's
business.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any

from ..expressions import is_expression_string
from .dataflow import expression, truthy
from .errors import WorkflowError

__all__ = ["Correlation", "build_event", "consume", "filter_matches"]

POLL_SECONDS = 0.25

REQUIRED = ("id", "source", "type", "specversion")


def build_event(attributes: Any, now: datetime, pointer: str) -> dict[str, Any]:
    """The CloudEvent an ``emit`` sends: rendered attributes plus id, specversion and time."""
    if not isinstance(attributes, dict):
        raise WorkflowError.standard(
            "validation", "emit.event.with must be an object", instance=pointer
        )
    event = {
        "id": str(uuid.uuid4()),
        "specversion": "1.0",
        "time": now.isoformat().replace("+00:00", "Z"),
        **{k: v for k, v in attributes.items() if v is not None},
    }
    event["id"], event["specversion"] = str(event["id"]), str(event["specversion"])
    missing = [name for name in ("source", "type") if not event.get(name)]
    if missing:
        raise WorkflowError.standard(
            "validation", f"the event to emit has no {' nor '.join(missing)}", instance=pointer
        )
    return event


@lru_cache(maxsize=1024)
def _regex(text: str) -> re.Pattern[str] | None:
    try:
        return re.compile(text)
    except re.error:
        return None


def _value_matches(wanted: Any, actual: Any, variables: Mapping[str, Any], pointer: str) -> bool:
    if is_expression_string(wanted):
        # ${ } reads the attribute's value: `data: ${ .temperature > 38 }`
        return truthy(expression(wanted, actual, variables, pointer))
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(
            k in actual and _value_matches(v, actual[k], variables, pointer)
            for k, v in wanted.items()
        )
    if isinstance(wanted, str) and isinstance(actual, str):
        if wanted == actual:
            return True
        pattern = _regex(wanted)
        return pattern is not None and pattern.fullmatch(actual) is not None
    return bool(wanted == actual)


class Correlation:
    """The values correlated so far: the first extracted value becomes the expectation."""

    def __init__(self) -> None:
        self.expected: dict[str, Any] = {}

    def check(
        self,
        correlate: Any,
        event: dict[str, Any],
        data: Any,
        variables: Mapping[str, Any],
        pointer: str,
    ) -> dict[str, Any] | None:
        """The values this event would fix, or None when it does not correlate."""
        fixed: dict[str, Any] = {}
        for name, rule in (correlate or {}).items():
            value = expression(
                rule.get("from"), event, variables, f"{pointer}/correlate/{name}/from"
            )
            if "expect" in rule:
                wanted = rule["expect"]
                if isinstance(wanted, str) and "${" in wanted:
                    wanted = expression(
                        wanted, data, variables, f"{pointer}/correlate/{name}/expect"
                    )
            elif name in self.expected:
                wanted = self.expected[name]
            else:
                fixed[name] = value
                continue
            if value != wanted:
                return None
        return fixed


def filter_matches(
    event_filter: Any, event: dict[str, Any], variables: Mapping[str, Any], pointer: str
) -> bool:
    """Whether ``event`` has every attribute of ``event_filter.with`` (literal, regex or ${ })."""
    wanted = event_filter.get("with") if isinstance(event_filter, dict) else None
    for name, value in (wanted or {}).items():
        if name not in event or not _value_matches(
            value, event[name], variables, f"{pointer}/with/{name}"
        ):
            return False
    return True


def consume(
    runner: Any,
    to: Mapping[str, Any],
    data: Any,
    variables: Mapping[str, Any],
    pointer: str,
    scope: Any,
) -> list[dict[str, Any]]:
    """Wait until the consumption strategy is satisfied; the consumed events, in order."""
    where = f"{pointer}/listen/to"
    if "one" in to:
        mode, filters = "all", [to["one"]]
    elif "all" in to:
        mode, filters = "all", list(to["all"] or [])
    else:
        mode, filters = "any", list(to.get("any") or [])
    until = to.get("until")
    correlation = Correlation()
    slots: list[dict[str, Any] | None] = [None] * len(filters)
    consumed: list[dict[str, Any]] = []
    until_consumed: list[dict[str, Any]] = []
    cursor = runner.host.listen_cursor(pointer)
    while True:
        runner.checkpoint(scope)
        events, cursor = runner.host.events(cursor)
        for event in events:
            if isinstance(until, dict) and _until(
                until, event, data, variables, where, until_consumed
            ):
                return consumed
            matched = _match(filters, slots, mode, event, correlation, data, variables, where)
            if matched:
                consumed.append(event)
                if mode == "all" and all(slot is not None for slot in slots):
                    return consumed
                if mode == "any":
                    if until is None:
                        return consumed
                    if isinstance(until, str) and truthy(
                        expression(until, consumed, variables, f"{where}/until")
                    ):
                        return consumed
        runner.sleep(POLL_SECONDS, scope)


def _match(
    filters: list[Any],
    slots: list[dict[str, Any] | None],
    mode: str,
    event: dict[str, Any],
    correlation: Correlation,
    data: Any,
    variables: Mapping[str, Any],
    where: str,
) -> bool:
    if mode == "any" and not filters:
        return True
    for i, event_filter in enumerate(filters):
        if mode == "all" and slots[i] is not None:
            continue
        if not filter_matches(event_filter, event, variables, f"{where}/{i}"):
            continue
        fixed = correlation.check(
            (event_filter or {}).get("correlate"), event, data, variables, f"{where}/{i}"
        )
        if fixed is None:
            continue
        correlation.expected.update(fixed)
        slots[i] = event
        return True
    return False


def _until(
    strategy: Mapping[str, Any],
    event: dict[str, Any],
    data: Any,
    variables: Mapping[str, Any],
    where: str,
    seen: list[dict[str, Any]],
) -> bool:
    """Feed ``event`` to an ``until`` strategy; True once it is satisfied."""
    filters = (
        [strategy["one"]]
        if "one" in strategy
        else list(strategy.get("all") or strategy.get("any") or [])
    )
    if not any(filter_matches(f, event, variables, f"{where}/until") for f in filters) and filters:
        return False
    seen.append(event)
    if "all" in strategy:
        return all(
            any(filter_matches(f, e, variables, f"{where}/until") for e in seen) for f in filters
        )
    return True
