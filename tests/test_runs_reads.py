"""What a step reads before it runs: a handed-over output saves the read of step rows.

On SQLite and PostgreSQL, through engine.runs with a real session (no worker needed).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event, make_url, select

import models
from engine import runs
from models import User
from settings import Settings

DAG: dict[str, Any] = {
    "nodes": [
        {"id": "s", "type": "start"},
        {"id": "t", "type": "transform", "config": {"expression": ".node.input.x + 1"}},
        {"id": "call", "type": "action", "config": {"method": "GET", "url": "https://x.test/"}},
        {"id": "e", "type": "end"},
    ],
    "edges": [
        {"source": "s", "target": "t"},
        {"source": "t", "target": "call"},
        {"source": "call", "target": "e"},
    ],
}


@contextmanager
def step_reads(url: str) -> Iterator[list[str]]:
    """Every SELECT on step_executions issued meanwhile on the database at ``url``.

    Listened for on every Engine: sessionmakers keep the engine they were made with.
    """
    target = make_url(url).render_as_string(hide_password=False)
    seen: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if conn.engine.url.render_as_string(hide_password=False) != target:
            return  # another test's engine, still running in this process
        if statement.lstrip().upper().startswith("SELECT") and "step_executions" in statement:
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def start(settings: Settings, client: Any, auth: dict[str, str]) -> tuple[str, str]:
    """A new execution of DAG whose start step has succeeded with output {"x": 1}."""
    created = client.post("/api/workflows", json={"name": "r", "definition": DAG}, headers=auth)
    assert created.status_code == 201
    wid = created.get_json()["id"]
    url = settings.effective_database_url
    with models.session_scope(url) as s:
        uid = s.execute(select(User.id).where(User.name == "alice")).scalar_one()
        eid = runs.create_execution(
            s, user_id=uid, workflow_id=wid, version=1, input={"x": 1}, chords=True
        ).execution.id
    with models.session_scope(url, progress=True) as s:
        claim, _ = runs.prepare_pure_step(s, eid, "s", chords=True)
        assert claim.kind == "run" and claim.handed  # a start node that needs nothing
        assert runs.complete_step(s, claim, {"x": 1}) is not None
    return wid, eid


def test_a_handed_over_output_spares_the_read_of_step_rows(settings, client, auth):
    url = settings.effective_database_url
    _, eid = start(settings, client, auth)
    # the transform, fed by the start's output in its message: no step row read
    with step_reads(url) as reads, models.session_scope(url, progress=True) as s:
        claim, _ = runs.prepare_pure_step(
            s, eid, "t", chords=True, prev={"node": "s", "output": {"x": 1}}
        )
        assert claim.kind == "run" and claim.input == {"x": 1}
        assert runs.complete_step(s, claim, 2) is not None
    assert reads == []
    # the action, fed by the transform's output: its claim reads no step row either
    with step_reads(url) as reads, models.session_scope(url) as s:
        claim, _ = runs.claim_step(
            s,
            eid,
            "call",
            chords=True,
            takeover=True,
            task_id="t-1",
            prev={"node": "t", "output": 2},
        )
        assert claim.kind == "run" and claim.attempt == 1 and claim.input == 2
    assert reads == []


def test_without_a_hand_over_the_same_steps_read_their_predecessors(settings, client, auth):
    url = settings.effective_database_url
    _, eid = start(settings, client, auth)
    with step_reads(url) as reads, models.session_scope(url, progress=True) as s:
        claim, _ = runs.prepare_pure_step(s, eid, "t", chords=True)
        assert claim.kind == "run" and claim.input == {"x": 1}
        assert runs.complete_step(s, claim, 2) is not None
    assert len(reads) == 1
    with step_reads(url) as reads, models.session_scope(url) as s:
        claim, _ = runs.claim_step(s, eid, "call", chords=True, takeover=True, task_id="t-1")
        assert claim.kind == "run" and claim.input == 2
    assert len(reads) == 1


def test_a_retry_reads_its_predecessor_even_with_a_hand_over(settings, client, auth):
    """Past the first attempt the row is not fresh: what it reads is the record."""
    url = settings.effective_database_url
    _, eid = start(settings, client, auth)
    with models.session_scope(url, progress=True) as s:
        claim, _ = runs.prepare_pure_step(s, eid, "t", chords=True)
        runs.complete_step(s, claim, 2)
    with models.session_scope(url) as s:
        first, _ = runs.claim_step(s, eid, "call", chords=True, takeover=True, task_id="t-1")
        assert runs.schedule_retry(s, first, {"message": "503"}, 0.0, parked=False)
    with step_reads(url) as reads, models.session_scope(url) as s:
        claim, _ = runs.claim_step(
            s,
            eid,
            "call",
            chords=True,
            takeover=True,
            task_id="t-2",
            prev={"node": "t", "output": 99},
        )
        assert claim.attempt == 2 and claim.input == 2  # the recorded output, not the message's
    assert len(reads) == 1
