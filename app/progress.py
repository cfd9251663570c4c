"""Live progress of one execution for `canvasflow run --wait` (on stderr; stdout gets the output)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from engine.states import EXECUTION_TERMINAL
from models import Execution, StepExecution, session_scope
from settings import Settings

STYLE = {
    "succeeded": "green",
    "failed": "red",
    "running": "yellow",
    "waiting": "cyan",
    "skipped": "dim",
    "cancelled": "magenta",
    "pending": "white",
}


def _snapshot(settings: Settings, execution_id: str) -> tuple[Execution, list[StepExecution]]:
    from sqlalchemy import select

    with session_scope(settings.effective_database_url) as s:
        exe = s.get(Execution, execution_id)
        assert exe is not None
        steps = list(
            s.execute(
                select(StepExecution)
                .where(StepExecution.execution_id == execution_id)
                .order_by(StepExecution.id)
            ).scalars()
        )
        return exe, steps


def _table(exe: Execution, steps: list[StepExecution], elapsed: float) -> Table:
    done = sum(1 for s in steps if s.status in ("succeeded", "skipped", "failed", "cancelled"))
    table = Table(
        title=f"execution {exe.id}  ({exe.status})  {done}/{len(steps)} steps  {elapsed:.1f}s",
        title_justify="left",
        expand=False,
        min_width=80,
    )
    table.add_column("step")
    table.add_column("status")
    table.add_column("attempts", justify="right")
    table.add_column("ms", justify="right")
    shown = [s for s in steps if s.status != "pending"][-30:]
    for s in shown:
        ms = ""
        if s.started_at and s.finished_at:
            ms = f"{(s.finished_at - s.started_at).total_seconds() * 1000:.0f}"
        table.add_row(
            s.node_id, f"[{STYLE.get(s.status, 'white')}]{s.status}[/]", str(s.attempts), ms
        )
    return table


def follow(settings: Settings, execution_id: str, timeout: float) -> int:
    """Show progress until the execution ends; print its output (or error) as JSON; 0 on success."""
    console = Console(file=sys.stderr)
    start = time.monotonic()
    exe, steps = _snapshot(settings, execution_id)
    with Live(
        _table(exe, steps, 0), console=console, refresh_per_second=8, transient=False
    ) as live:
        while exe.status not in {s.value for s in EXECUTION_TERMINAL}:
            if time.monotonic() - start > timeout:
                console.print(
                    f"[red]timed out after {timeout}s; execution {execution_id} is {exe.status}[/]"
                )
                return 1
            time.sleep(0.1)
            exe, steps = _snapshot(settings, execution_id)
            live.update(_table(exe, steps, time.monotonic() - start))
    result: dict[str, Any] = {"execution_id": exe.id, "status": exe.status}
    if exe.status == "succeeded":
        print(json.dumps(exe.output, indent=2, default=str))
        return 0
    result["error"] = exe.error
    print(json.dumps(result, indent=2, default=str))
    return 1
