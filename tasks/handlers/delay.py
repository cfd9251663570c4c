"""delay: compute when the step wakes; the task parks it (countdown or database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from engine.errors import StepError
from engine.expressions import evaluate, is_expression_string, render
from engine.graph import Node

from .env import HandlerEnv


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise StepError(
            f"delay `until` must be an ISO 8601 time, got {value!r}", error_type="invalid_config"
        )
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise StepError(
            f"delay `until` is not an ISO 8601 time: {value!r}", error_type="invalid_config"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def wake_at(node: Node, context: dict[str, Any], now: datetime | None = None) -> datetime:
    """The moment the delay ends."""
    now = now or datetime.now(UTC)
    cfg = node.config
    if "seconds" in cfg:
        seconds = render(cfg["seconds"], context)
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise StepError(
                f"delay seconds must be a number >= 0, got {seconds!r}", error_type="invalid_config"
            )
        return now + timedelta(seconds=float(seconds))
    until = cfg.get("until")
    if isinstance(until, str) and not is_expression_string(until):
        try:
            return _parse_time(until)
        except StepError:
            return _parse_time(evaluate(until, context))
    return _parse_time(render(until, context))


def handle(node: Node, data: Any, context: dict[str, Any], env: HandlerEnv) -> Any:
    """Run inline only by the Serverless runner or tests: the output of a delay is its input."""
    return data
