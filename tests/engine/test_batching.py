"""Batching pure nodes into tasks: shapes through Celery's JSON form, and order preserved."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.batching import batch_spec, region_canvas
from engine.compiler import (
    RUN_NODE,
    RUN_NODES,
    Batch,
    Chain,
    Chord,
    Group,
    Spec,
    Task,
    compile_plan,
    to_signature,
)
from engine.graph import Workflow
from tests.engine.test_compiler import DIAMOND, random_dags, wf


def celery_json(spec: Spec) -> Any:
    return json.loads(json.dumps(to_signature(spec, "exe")))


def chain_of(types: list[str]) -> Workflow:
    ids = ["s"] + [f"n{i}" for i in range(len(types))] + ["e"]
    nodes = [("s", "start")] + [(f"n{i}", t) for i, t in enumerate(types)] + [("e", "end")]
    return wf(nodes, list(zip(ids, ids[1:], strict=False)))


def fan(width: int, branch: str = "transform") -> Workflow:
    nodes = [("s", "start"), ("f", "fork")] + [(f"b{i}", branch) for i in range(width)]
    nodes += [("j", "join"), ("e", "end")]
    edges = [("s", "f")] + [("f", f"b{i}") for i in range(width)]
    edges += [(f"b{i}", "j") for i in range(width)] + [("j", "e")]
    return wf(nodes, edges)


def test_a_chain_of_pure_nodes_is_one_task() -> None:
    plan = compile_plan(chain_of(["transform"] * 5))
    sig = celery_json(region_canvas(plan, "s"))
    assert sig.get("subtask_type") is None
    assert sig["task"] == RUN_NODES
    assert sig["args"] == ["exe", ["s", "n0", "n1", "n2", "n3", "n4", "e"]]
    assert sig["immutable"] and sig["options"]["ignore_result"]


def test_an_action_keeps_a_task_of_its_own_between_batches() -> None:
    plan = compile_plan(chain_of(["transform", "action", "transform", "condition"]))
    sig = celery_json(region_canvas(plan, "s"))
    assert sig["subtask_type"] == "chain"
    tasks = sig["kwargs"]["tasks"]
    assert [(t["task"], t["args"][1]) for t in tasks] == [
        (RUN_NODES, ["s", "n0"]),
        (RUN_NODE, "n1"),
        (RUN_NODES, ["n2", "n3", "e"]),
    ]


def test_a_batch_holds_at_most_size_nodes() -> None:
    plan = compile_plan(chain_of(["transform"] * 8))
    spec = region_canvas(plan, "s", size=4)
    assert spec == Chain(
        (Batch(("s", "n0", "n1", "n2")), Batch(("n3", "n4", "n5", "n6")), Batch(("n7", "e")))
    )


def test_size_one_publishes_a_task_per_node() -> None:
    plan = compile_plan(chain_of(["transform"] * 3))
    assert region_canvas(plan, "s", size=1) == plan.regions["s"]
    ids = [t["args"][1] for t in celery_json(region_canvas(plan, "s", 1))["kwargs"]["tasks"]]
    assert ids == ["s", "n0", "n1", "n2", "e"]


def test_a_wide_pure_fan_out_is_a_chord_of_even_chunks() -> None:
    plan = compile_plan(fan(100))
    sig = celery_json(region_canvas(plan, "s", size=25))
    assert sig["subtask_type"] == "chain"
    first, chord = sig["kwargs"]["tasks"]
    assert first["args"][1] == ["s", "f"]
    assert chord["subtask_type"] == "chord"
    header = chord["kwargs"]["header"]
    assert [len(h["args"][1]) for h in header] == [25, 25, 25, 25]
    assert sorted(n for h in header for n in h["args"][1]) == sorted(f"b{i}" for i in range(100))
    # header results feed the chord's counter; the join and the end share the body task
    assert all("ignore_result" not in h["options"] for h in header)
    assert chord["kwargs"]["body"]["args"][1] == ["j", "e"]


def test_chunks_are_even_rather_than_one_full_and_one_small() -> None:
    spec = region_canvas(compile_plan(fan(30)), "s", size=25)
    assert isinstance(spec, Chain) and isinstance(spec.items[1], Chord)
    assert [len(h.nodes) for h in spec.items[1].header if isinstance(h, Batch)] == [15, 15]


def test_a_small_pure_fan_out_collapses_into_one_task() -> None:
    spec = region_canvas(compile_plan(DIAMOND), "s")
    assert spec == Batch(("s", "f", "a", "b", "j", "e"))


def test_branches_that_do_io_keep_their_parallel_tasks() -> None:
    spec = region_canvas(compile_plan(fan(3, branch="action")), "s")
    sig = celery_json(spec)
    chord = sig["kwargs"]["tasks"][1]
    assert [(h["task"], h["args"][1]) for h in chord["kwargs"]["header"]] == [
        (RUN_NODE, "b0"),
        (RUN_NODE, "b1"),
        (RUN_NODE, "b2"),
    ]
    assert chord["kwargs"]["body"]["args"][1] == ["j", "e"]


def _nodes(spec: Spec) -> list[str]:
    if isinstance(spec, Task):
        return [spec.node_id]
    if isinstance(spec, Batch):
        return list(spec.nodes)
    if isinstance(spec, Chord):
        return [n for h in spec.header for n in _nodes(h)] + _nodes(spec.body)
    return [n for i in spec.items for n in _nodes(i)]


def _before(spec: Spec) -> set[tuple[str, str]]:
    """Pairs (a, b) where the canvas runs a to its end before b starts."""
    if isinstance(spec, Task):
        return set()
    if isinstance(spec, Batch):
        ns = spec.nodes
        return {(a, b) for i, a in enumerate(ns) for b in ns[i + 1 :]}
    if isinstance(spec, Group):
        return set().union(*(_before(i) for i in spec.items))
    parts: list[Spec] = (
        [*spec.items] if isinstance(spec, Chain) else [Group(spec.header), spec.body]
    )
    out: set[tuple[str, str]] = set().union(*(_before(p) for p in parts))
    for i, p in enumerate(parts):
        for q in parts[i + 1 :]:
            out |= {(a, b) for a in _nodes(p) for b in _nodes(q)}
    return out


def _batches(spec: Spec) -> list[Batch]:
    if isinstance(spec, Batch):
        return [spec]
    if isinstance(spec, Task):
        return []
    if isinstance(spec, Chord):
        return [b for h in (*spec.header, spec.body) for b in _batches(h)]
    return [b for i in spec.items for b in _batches(i)]


@settings(max_examples=150, deadline=None)
@given(random_dags(), st.booleans(), st.integers(2, 6))
def test_batching_keeps_every_node_once_and_every_canvas_edge_in_order(
    w: Workflow, chords: bool, size: int
) -> None:
    plan = compile_plan(w, chords=chords)
    for spec in plan.regions.values():
        batched = batch_spec(spec, plan.pure, size)
        assert sorted(_nodes(batched)) == sorted(_nodes(spec))
        order = _before(batched)
        # whatever the unbatched canvas runs in order, the batched one does too
        assert _before(spec) <= order
        for b in _batches(batched):
            assert 2 <= len(b.nodes) <= size
            assert all(n in plan.pure for n in b.nodes)
        # a node that does I/O never shares a task
        for node in _nodes(batched):
            if node not in plan.pure:
                assert not any(node in b.nodes for b in _batches(batched))
