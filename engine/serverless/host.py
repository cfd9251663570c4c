"""The ``Host``: every side effect the interpreter needs, behind one protocol.

The interpreter stays pure Python and is tested with a fake host; the real one is
``tasks/handlers/serverless/`` (database steps and events, HTTP, sub-workflows, processes).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

__all__ = ["Host"]


class Host(Protocol):
    """Every side effect the interpreter needs; see tasks/handlers/serverless/host.py."""

    secrets: Mapping[str, Any]
    allow_run: bool

    def now(self) -> datetime: ...
    def cancelled(self) -> bool: ...
    def sleep(self, seconds: float) -> None: ...
    def record_step(
        self,
        pointer: str,
        kind: str,
        status: str,
        input: Any,
        output: Any,
        error: dict[str, Any] | None,
        started: datetime,
        finished: datetime | None,
    ) -> None: ...
    def http(self, request: dict[str, Any], timeout: float) -> dict[str, Any]: ...
    def emit(self, event: dict[str, Any]) -> None: ...
    def listen_cursor(self, pointer: str) -> Any: ...
    def events(self, cursor: Any) -> tuple[list[dict[str, Any]], Any]: ...
    def run_workflow(
        self, namespace: str, name: str, version: str, input: Any, wait: bool, pointer: str
    ) -> Any: ...
    def run_process(self, kind: str, spec: dict[str, Any], pointer: str) -> dict[str, Any]: ...
