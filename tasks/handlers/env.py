"""What a handler may know about the run it works for."""

from __future__ import annotations

from dataclasses import dataclass

from settings import Settings


@dataclass(frozen=True)
class HandlerEnv:
    settings: Settings
    execution_id: str
    workflow_id: str
    node_id: str
    attempt: int
    timeout_seconds: float | None = None

    @property
    def idempotency_key(self) -> str:
        """Stable across attempts and redeliveries, so upstreams can drop repeats."""
        return f"{self.execution_id}:{self.node_id}"
