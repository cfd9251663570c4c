"""Durations as Serverless Workflow writes them: ISO 8601 strings or inline objects."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .dataflow import expression
from .errors import WorkflowError

__all__ = ["resolve_duration", "to_seconds"]

_ISO = re.compile(
    r"^P(?!$)(?:(?P<weeks>\d+(?:[.,]\d+)?)W)?(?:(?P<days>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+(?:[.,]\d+)?)H)?(?:(?P<minutes>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?$",
    re.IGNORECASE,
)
_UNITS = {
    "weeks": 604800.0,
    "days": 86400.0,
    "hours": 3600.0,
    "minutes": 60.0,
    "seconds": 1.0,
    "milliseconds": 0.001,
}


def to_seconds(value: Any) -> float:
    """Seconds in ISO 8601 text (``P1DT2H``) or ``{days, hours, minutes, seconds, milliseconds}``.

    Years and months are refused: their length depends on the calendar.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _ISO.match(value.strip())
        if match is None:
            raise ValueError(
                f"not an ISO 8601 duration (years and months are not supported): {value!r}"
            )
        return sum(
            float(amount.replace(",", ".")) * _UNITS[unit]
            for unit, amount in match.groupdict().items()
            if amount
        )
    if isinstance(value, dict):
        unknown = set(value) - {k.lower() for k in _UNITS} - set(_UNITS)
        if unknown or not value:
            raise ValueError(f"not a duration: {value!r}")
        total = 0.0
        for key, amount in value.items():
            if isinstance(amount, bool) or not isinstance(amount, int | float):
                raise ValueError(f"duration {key} must be a number, got {amount!r}")
            total += float(amount) * _UNITS[key.lower()]
        return total
    raise ValueError(f"not a duration: {value!r}")


def resolve_duration(value: Any, data: Any, variables: Mapping[str, Any], pointer: str) -> float:
    """A duration field (maybe a ``${ }`` expression) in seconds; configuration error if bad."""
    if isinstance(value, str) and "${" in value:
        value = expression(value, data, variables, pointer)
    try:
        return to_seconds(value)
    except ValueError as exc:
        raise WorkflowError.standard("configuration", str(exc), instance=pointer) from exc
