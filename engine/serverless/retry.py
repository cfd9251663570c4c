"""``try``/``catch``: which errors a catch takes, and how long a retry policy waits."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from .dataflow import expression, truthy
from .durations import resolve_duration
from .errors import WorkflowError

__all__ = ["catches", "retry_delay"]


def catches(
    catch: Mapping[str, Any],
    error: WorkflowError,
    data: Any,
    variables: Mapping[str, Any],
    pointer: str,
) -> bool:
    """Whether ``catch`` (``errors.with``, ``when``, ``exceptWhen``) takes ``error``."""
    errors = catch.get("errors") or {}
    if not error.matches(errors.get("with") if isinstance(errors, dict) else None):
        return False
    if "when" in catch and not truthy(
        expression(catch["when"], data, variables, f"{pointer}/catch/when")
    ):
        return False
    return not (
        "exceptWhen" in catch
        and truthy(expression(catch["exceptWhen"], data, variables, f"{pointer}/catch/exceptWhen"))
    )


def retry_delay(
    policy: Mapping[str, Any],
    retries: int,
    elapsed: float,
    data: Any,
    variables: Mapping[str, Any],
    pointer: str,
) -> float | None:
    """Seconds to wait before retry ``retries + 1``, or None when the policy says stop."""
    where = f"{pointer}/catch/retry"
    if "when" in policy and not truthy(
        expression(policy["when"], data, variables, f"{where}/when")
    ):
        return None
    if "exceptWhen" in policy and truthy(
        expression(policy["exceptWhen"], data, variables, f"{where}/exceptWhen")
    ):
        return None
    limit = policy.get("limit") or {}
    attempt = limit.get("attempt") or {}
    if "count" in attempt and retries >= int(attempt["count"]):
        return None
    for cap in (limit.get("duration"), attempt.get("duration")):
        if cap is not None and elapsed >= resolve_duration(cap, data, variables, f"{where}/limit"):
            return None
    delay = (
        resolve_duration(policy["delay"], data, variables, f"{where}/delay")
        if "delay" in policy
        else 0.0
    )
    backoff = policy.get("backoff") or {}
    if "exponential" in backoff:
        delay *= 2**retries
    elif "linear" in backoff:
        delay *= retries + 1
    jitter = policy.get("jitter")
    if isinstance(jitter, dict):
        low = resolve_duration(jitter.get("from", 0), data, variables, f"{where}/jitter/from")
        high = resolve_duration(jitter.get("to", 0), data, variables, f"{where}/jitter/to")
        delay += random.uniform(min(low, high), max(low, high))
    return delay
