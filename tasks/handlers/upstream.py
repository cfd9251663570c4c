"""Per-host circuit breaker and outbound rate limit for `action` calls.

One failing API must not burn every retry of every execution: after
``circuit_failure_threshold`` consecutive failures to a host, calls fail fast (retryable)
for ``circuit_reset_seconds``; then one trial call decides. Per worker process.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from engine.errors import StepError
from settings import Settings


@dataclass
class Breaker:
    host: str
    threshold: int
    reset_seconds: float
    rate: float
    failures: int = 0
    opened_at: float | None = None
    next_slot: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def before_call(self) -> None:
        """Fail fast while open; wait for the next rate-limit slot."""
        with self.lock:
            now = time.monotonic()
            if self.opened_at is not None:
                if now - self.opened_at < self.reset_seconds:
                    raise StepError(
                        f"circuit open for {self.host} after {self.failures} consecutive failures",
                        error_type="circuit_open",
                        retryable=True,
                        details={
                            "retry_after": round(self.reset_seconds - (now - self.opened_at), 1)
                        },
                    )
                self.opened_at = now  # half-open: this call is the trial; others still fail fast
            wait = 0.0
            if self.rate > 0:
                slot = max(now, self.next_slot)
                self.next_slot = slot + 1.0 / self.rate
                wait = slot - now
        if wait > 0:
            time.sleep(wait)

    def record(self, ok: bool) -> None:
        with self.lock:
            if ok:
                self.failures = 0
                self.opened_at = None
            else:
                self.failures += 1
                if self.threshold and self.failures >= self.threshold:
                    self.opened_at = time.monotonic()


_breakers: dict[str, Breaker] = {}
_lock = threading.Lock()


def for_url(url: str, settings: Settings) -> Breaker:
    host = (urlsplit(url).hostname or "").lower()
    with _lock:
        b = _breakers.get(host)
        if b is None:
            b = _breakers[host] = Breaker(
                host,
                settings.circuit_failure_threshold,
                settings.circuit_reset_seconds,
                settings.action_rate_limit_per_host,
            )
        return b


def reset() -> None:
    """Forget every breaker (tests)."""
    with _lock:
        _breakers.clear()
