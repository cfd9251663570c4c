"""The execution engine end to end: real workers, real database, real HTTP upstream.

Each test runs twice: on the embedded default and on RabbitMQ + PostgreSQL + Redis, and
asserts the same outputs, statuses, attempts and orderings.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import Harness
from tests.support.upstream import Upstream

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def dag(
    nodes: list[dict[str, Any]], edges: list[tuple[str, str] | tuple[str, str, str]]
) -> dict[str, Any]:
    return {
        "nodes": nodes,
        "edges": [
            {"source": e[0], "target": e[1], **({"when": e[2]} if len(e) == 3 else {})}
            for e in edges
        ],
    }


def n(id: str, type: str, **config: Any) -> dict[str, Any]:
    node: dict[str, Any] = {"id": id, "type": type}
    retry = config.pop("retry", None)
    if retry:
        node["retry"] = retry
    if config:
        node["config"] = config
    return node


def contract_example(upstream: Upstream) -> dict[str, Any]:
    text = (FIXTURES / "dag" / "contract_example.json").read_text()
    doc = json.loads(text)
    doc = json.loads(json.dumps(doc).replace("http://api.local", upstream.url))
    for node in doc["nodes"]:
        if node["id"] == "get_user":
            node["retry"] = {"max_attempts": 2, "initial_seconds": 0}
        if node["id"] == "wait":
            node["config"] = {"seconds": 1}
    return doc


def started(r: Any, node: str) -> float:
    return r.step(node)["started_at"].timestamp()


def finished(r: Any, node: str) -> float:
    return r.step(node)["finished_at"].timestamp()


def test_contract_example_vip_path(engine: Harness, upstream: Upstream) -> None:
    r = engine.run(contract_example(upstream), {"user_id": 42})
    assert r.status == "succeeded", r.error
    assert r.output == {
        "status": 200,
        "headers": {},
        "body": {"a": {"name": "User 42"}, "b": {"greeting": "Hello User 42", "n": 1}},
    }
    assert set(r.statuses().values()) == {"succeeded"}
    assert r.step("get_user")["output"]["body"]["tier"] == "vip"
    assert r.step("merge")["input"] == {
        "a": {"name": "User 42"},
        "b": {"greeting": "Hello User 42", "n": 1},
    }
    # the delay really waited, and everything ran in dependency order
    assert finished(r, "wait") - started(r, "wait") >= 0.9
    order = ["start", "get_user", "is_vip", "wait", "split", "merge", "reply", "end"]
    assert [started(r, x) for x in order] == sorted(started(r, x) for x in order)
    assert max(finished(r, "a"), finished(r, "b")) <= started(r, "merge")
    assert r.response == r.output
    # every attempt carried the stable idempotency key
    assert upstream.keys("/users/42")[f"{r.id}:get_user"] == 1


def test_contract_example_false_branch_skips_and_end_runs(
    engine: Harness, upstream: Upstream
) -> None:
    r = engine.run(contract_example(upstream), {"user_id": 7})
    assert r.status == "succeeded", r.error
    assert r.output == {"result": False}
    for skipped in ("wait", "split", "a", "b", "merge", "reply"):
        assert r.step(skipped)["status"] == "skipped", skipped
        assert r.step(skipped)["attempts"] == 0
    assert r.step("end")["status"] == "succeeded"


def test_if_else_join_runs_with_the_taken_branch(engine: Harness) -> None:
    wf = dag(
        [
            n("s", "start"),
            n("c", "condition", expression=".input.n > 5"),
            n("big", "transform", expression='"big"'),
            n("small", "transform", expression='"small"'),
            n("j", "join"),
            n("e", "end"),
        ],
        [
            ("s", "c"),
            ("c", "big", "true"),
            ("c", "small", "false"),
            ("big", "j"),
            ("small", "j"),
            ("j", "e"),
        ],
    )
    wid = engine.workflow(wf)
    hi = engine.wait(engine.start(wid, {"n": 9}))
    lo = engine.wait(engine.start(wid, {"n": 1}))
    assert (hi.status, hi.output) == ("succeeded", {"big": "big"})
    assert (lo.status, lo.output) == ("succeeded", {"small": "small"})
    assert hi.step("small")["status"] == "skipped" and lo.step("big")["status"] == "skipped"


def test_non_series_parallel_dag_keeps_maximum_parallelism(
    engine: Harness, upstream: Upstream
) -> None:
    """A->C, A->D, B->D, B->E, C/D/E->F: C starts when A is done, not when slow B is."""
    slow = f"{upstream.url}/slow?ms=1500"
    fast = f"{upstream.url}/slow?ms=10"
    wf = dag(
        [
            n("s", "start"),
            n("A", "action", method="GET", url=fast),
            n("B", "action", method="GET", url=slow),
            n("C", "transform", expression='"c"'),
            n("D", "join"),
            n("E", "transform", expression='"e"'),
            n("F", "join"),
            n("end", "end"),
        ],
        [
            ("s", "A"),
            ("s", "B"),
            ("A", "C"),
            ("A", "D"),
            ("B", "D"),
            ("B", "E"),
            ("C", "F"),
            ("D", "F"),
            ("E", "F"),
            ("F", "end"),
        ],
    )
    r = engine.run(wf)
    assert r.status == "succeeded", r.error
    assert finished(r, "C") < finished(r, "B"), "C waited for the unrelated slow branch B"
    assert started(r, "D") >= finished(r, "B") and started(r, "E") >= finished(r, "B")
    assert started(r, "F") >= max(finished(r, x) for x in "CDE")
    assert set(r.output) == {"C", "D", "E"}


def test_action_retries_5xx_with_the_same_idempotency_key(
    engine: Harness, upstream: Upstream
) -> None:
    key = f"retry-{time.time_ns()}"
    wf = dag(
        [
            n("s", "start"),
            n(
                "call",
                "action",
                method="POST",
                url=f"{upstream.url}/flaky/{key}?fail=2",
                body={"x": "${ .input.x }"},
                retry={"max_attempts": 3, "initial_seconds": 0},
            ),
            n("e", "end"),
        ],
        [("s", "call"), ("call", "e")],
    )
    r = engine.run(wf, {"x": 5})
    assert r.status == "succeeded", r.error
    assert r.step("call")["attempts"] == 3
    assert r.output["body"] == {"attempt": 3, "ok": True}
    hits = upstream.hits_for(f"/flaky/{key}")
    assert [h.idempotency_key for h in hits] == [f"{r.id}:call"] * 3
    assert all(h.body == {"x": 5} for h in hits)
    assert [h["status"] for h in r.step("call")["history"]] == ["failed", "failed", "succeeded"]


def test_4xx_is_not_retried_and_fails_the_execution(engine: Harness, upstream: Upstream) -> None:
    wf = dag(
        [
            n("s", "start"),
            n("f", "fork"),
            n("bad", "action", method="GET", url=f"{upstream.url}/status/404"),
            n("slow", "action", method="GET", url=f"{upstream.url}/slow?ms=3000"),
            n("j", "join"),
            n("after", "transform", expression="1"),
            n("e", "end"),
        ],
        [
            ("s", "f"),
            ("f", "bad"),
            ("f", "slow"),
            ("bad", "j"),
            ("slow", "j"),
            ("j", "after"),
            ("after", "e"),
        ],
    )
    r = engine.run(wf)
    assert r.status == "failed"
    assert r.step("bad")["status"] == "failed" and r.step("bad")["attempts"] == 1
    assert r.step("bad")["error"]["type"] == "http_error"
    assert r.error["node_id"] == "bad" and "404" in r.error["message"]
    assert r.step("after")["status"] == "cancelled" and r.step("after")["started_at"] is None
    assert r.step("j")["status"] == "cancelled"


def test_retries_exhausted_on_5xx_fail_with_every_attempt_recorded(
    engine: Harness, upstream: Upstream
) -> None:
    wf = dag(
        [
            n("s", "start"),
            n(
                "x",
                "action",
                method="GET",
                url=f"{upstream.url}/status/500",
                retry={"max_attempts": 2, "initial_seconds": 0},
            ),
            n("e", "end"),
        ],
        [("s", "x"), ("x", "e")],
    )
    r = engine.run(wf)
    assert r.status == "failed"
    assert r.step("x")["attempts"] == 2
    assert r.step("e")["status"] == "cancelled"


@pytest.mark.parametrize(
    "expression, fragment",
    [
        (".input.a.b.c", "Cannot index"),
        ('error("boom")', "boom"),
    ],
)
def test_runtime_expression_errors_fail_the_step_clearly(
    engine: Harness, expression: str, fragment: str
) -> None:
    wf = dag(
        [n("s", "start"), n("t", "transform", expression=expression), n("e", "end")],
        [("s", "t"), ("t", "e")],
    )
    r = engine.run(wf, {"a": 5})
    assert r.status == "failed"
    assert r.step("t")["error"]["type"] == "expression_error"
    assert fragment in r.step("t")["error"]["message"]


def test_text_response_where_json_is_needed_fails_the_next_step(
    engine: Harness, upstream: Upstream
) -> None:
    wf = dag(
        [
            n("s", "start"),
            n("get", "action", method="GET", url=f"{upstream.url}/text"),
            n("t", "transform", expression=".steps.get.output.body.name"),
            n("e", "end"),
        ],
        [("s", "get"), ("get", "t"), ("t", "e")],
    )
    r = engine.run(wf)
    assert r.step("get")["output"]["body"] == "hello, world"
    assert r.status == "failed" and r.step("t")["status"] == "failed"


def test_unreachable_host_fails_after_retries(engine: Harness) -> None:
    wf = dag(
        [
            n("s", "start"),
            n(
                "x",
                "action",
                method="GET",
                url="http://127.0.0.1:1/nothing",
                retry={"max_attempts": 2, "initial_seconds": 0},
            ),
            n("e", "end"),
        ],
        [("s", "x"), ("x", "e")],
    )
    r = engine.run(wf)
    assert r.status == "failed"
    assert r.step("x")["error"]["type"] == "connection_error" and r.step("x")["attempts"] == 2


def test_long_delay_parks_in_the_database_and_resumes(engine: Harness) -> None:
    # short_delay_seconds is 2 in these harnesses: 3 s is a "long" delay woken by the ticker.
    wf = dag(
        [
            n("s", "start"),
            n("d", "delay", seconds=3),
            n("t", "transform", expression=".node.input"),
            n("e", "end"),
        ],
        [("s", "d"), ("d", "t"), ("t", "e")],
    )
    wid = engine.workflow(wf)
    eid = engine.start(wid, {"k": 1})
    time.sleep(1.0)
    mid = engine.result(eid)
    assert mid.step("d")["status"] == "waiting"
    r = engine.wait(eid)
    assert r.status == "succeeded" and r.output == {"k": 1}
    assert finished(r, "d") - started(r, "d") >= 2.9


def test_cancel_stops_running_work_and_nothing_starts_after(
    engine: Harness, upstream: Upstream
) -> None:
    from tasks.publish import revoke

    wf = dag(
        [
            n("s", "start"),
            n("slow", "action", method="GET", url=f"{upstream.url}/slow?ms=1500"),
            n("next", "transform", expression="1"),
            n("e", "end"),
        ],
        [("s", "slow"), ("slow", "next"), ("next", "e")],
    )
    wid = engine.workflow(wf)
    eid = engine.start(wid)
    deadline = time.monotonic() + 10
    while engine.result(eid).step("slow")["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    from engine import runs
    from models import session_scope

    with session_scope(engine.settings.effective_database_url) as s:
        task_ids = runs.cancel_execution(s, eid)
    revoke(engine.app, task_ids)
    time.sleep(2.5)
    r = engine.result(eid)
    assert r.status == "cancelled"
    assert r.step("slow")["status"] == "cancelled"
    assert r.step("next")["status"] == "cancelled" and r.step("next")["started_at"] is None
    assert r.step("e")["started_at"] is None


def test_retry_from_failure_keeps_succeeded_steps(engine: Harness, upstream: Upstream) -> None:
    from tasks.service import resume_execution

    key = f"gate-{time.time_ns()}"
    wf = dag(
        [
            n("s", "start"),
            n("first", "action", method="GET", url=f"{upstream.url}/users/1"),
            n("gated", "action", method="GET", url=f"{upstream.url}/gate/{key}"),
            n("last", "transform", expression=".steps.first.output.body.name"),
            n("e", "end"),
        ],
        [("s", "first"), ("first", "gated"), ("gated", "last"), ("last", "e")],
    )
    wid = engine.workflow(wf)
    eid = engine.start(wid)
    r = engine.wait(eid)
    assert r.status == "failed" and r.step("gated")["status"] == "failed"
    assert r.step("last")["status"] == "cancelled"
    upstream.open(key)
    resume_execution(engine.settings, engine.app, eid)
    r = engine.wait(eid, until={"succeeded", "failed"})
    assert r.status == "succeeded", r.error
    assert r.output == "User 1"
    assert upstream.keys("/users/1")[f"{eid}:first"] == 1  # not called again
    # the retry budget is whole again; the history keeps the failed attempt too
    assert r.step("gated")["attempts"] == 1
    assert [h["status"] for h in r.step("gated")["history"]] == ["failed", "succeeded"]


def test_wide_fork_join_and_long_chain(engine: Harness) -> None:
    width = 50
    nodes = [n("s", "start"), n("f", "fork")] + [
        n(f"b{i}", "transform", expression=f"{i}") for i in range(width)
    ]
    nodes += [
        n("j", "join"),
        n("sum", "transform", expression="[.node.input[]] | add"),
        n("e", "end"),
    ]
    edges: list[Any] = (
        [("s", "f")]
        + [("f", f"b{i}") for i in range(width)]
        + [(f"b{i}", "j") for i in range(width)]
    )
    edges += [("j", "sum"), ("sum", "e")]
    r = engine.run(dag(nodes, edges))
    assert r.status == "succeeded" and r.output == sum(range(width))
    length = 60
    chain = [n("s", "start")] + [
        n(f"t{i}", "transform", expression=".node.input + 1") for i in range(length)
    ]
    chain.append(n("e", "end"))
    ids = ["s"] + [f"t{i}" for i in range(length)] + ["e"]
    r = engine.run(dag(chain, list(zip(ids, ids[1:], strict=False))), 0)
    assert r.status == "succeeded" and r.output == length
    starts = [started(r, i) for i in ids]
    assert starts == sorted(starts)


def test_a_batch_redelivered_after_a_crash_runs_only_what_is_left(engine: Harness) -> None:
    """A worker dies mid-batch: the redelivered message finds the finished steps recorded
    and runs the rest, each step once (no message is published here: the test is the worker)."""
    from engine import runs
    from models import session_scope
    from tasks.node import run_nodes

    nodes = [n("s", "start")] + [
        n(f"t{i}", "transform", expression=".node.input * 2") for i in range(4)
    ]
    ids = ["s"] + [f"t{i}" for i in range(4)] + ["e"]
    wid = engine.workflow(dag([*nodes, n("e", "end")], list(zip(ids, ids[1:], strict=False))))
    url = engine.settings.effective_database_url
    with session_scope(url) as s:
        eid = runs.create_execution(
            s,
            user_id=engine.user_id,
            workflow_id=wid,
            version=1,
            input=3,
            chords=engine.settings.native_chords,
        ).execution.id
    crashed = run_nodes.apply(args=(eid, ids[:3]))  # the batch got this far, then the crash
    assert crashed.successful(), crashed.traceback
    first = engine.result(eid)
    assert first.status == "running"
    assert [first.step(i)["status"] for i in ids] == ["succeeded"] * 3 + ["pending"] * 3
    again = run_nodes.apply(args=(eid, ids))  # the redelivery: the whole batch again
    assert again.successful(), again.traceback
    r = engine.result(eid)
    assert r.status == "succeeded" and r.output == 3 * 2**4
    for i in ids:
        assert r.step(i)["attempts"] == 1 and len(r.step(i)["history"]) == 1, i
    for i in ids[:3]:  # what was done before the crash was not redone
        assert r.step(i)["finished_at"] == first.step(i)["finished_at"]
    assert [r.step(i)["output"] for i in ids[1:5]] == [6, 12, 24, 48]


def test_idempotency_key_returns_the_first_execution(engine: Harness) -> None:
    wid = engine.workflow(dag([n("s", "start"), n("e", "end")], [("s", "e")]))
    a = engine.start(wid, {"v": 1}, idempotency_key="same")
    b = engine.start(wid, {"v": 2}, idempotency_key="same")
    assert a == b
    assert engine.wait(a).output == {"v": 1}


def test_webhook_response_and_end_output_mapping(engine: Harness) -> None:
    wf = dag(
        [
            n("s", "start"),
            n(
                "r",
                "webhook_response",
                status=201,
                headers={"X-Id": "${ .execution.id }"},
                body={"got": "${ .input.q }"},
            ),
            n("e", "end", output={"done": True, "q": "${ .input.q }"}),
        ],
        [("s", "r"), ("r", "e")],
    )
    r = engine.run(wf, {"q": "hi"})
    assert r.status == "succeeded"
    assert r.response == {"status": 201, "headers": {"X-Id": r.id}, "body": {"got": "hi"}}
    assert r.output == {"done": True, "q": "hi"}


def test_serverless_top_level_wait_parks_durably(engine: Harness) -> None:
    doc = {
        "document": {"dsl": "1.0.0", "namespace": "t", "name": "parked", "version": "0.1.0"},
        "do": [
            {"first": {"set": {"a": "${ .x }"}}},
            {"pause": {"wait": "PT3S"}},
            {"last": {"set": {"b": "${ .a + 1 }"}}},
        ],
    }
    wid = engine.workflow(doc)
    eid = engine.start(wid, {"x": 1})
    time.sleep(1.2)
    mid = engine.result(eid)
    assert mid.step("/do/1/pause")["status"] == "waiting"  # parked in the database
    r = engine.wait(eid)
    assert r.status == "succeeded", r.error
    assert r.output == {"b": 2}
    assert finished(r, "/do/1/pause") - started(r, "/do/1/pause") >= 2.9
