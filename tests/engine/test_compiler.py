"""The compiler: canvases per series-parallel region, counters where nothing else fits."""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.compiler import MAX_CANVAS_TASKS, Chord, compile, compile_plan, to_signature
from engine.graph import Edge, Node, Workflow


def wf(nodes: list[tuple[str, str]], edges: list[tuple[str, str]], **config: Any) -> Workflow:
    return Workflow(
        tuple(Node(i, t, config.get(i, {})) for i, t in nodes), tuple(Edge(a, b) for a, b in edges)
    )


DIAMOND = wf(
    [
        ("s", "start"),
        ("f", "fork"),
        ("a", "transform"),
        ("b", "transform"),
        ("j", "join"),
        ("e", "end"),
    ],
    [("s", "f"), ("f", "a"), ("f", "b"), ("a", "j"), ("b", "j"), ("j", "e")],
)

NON_SP = wf(
    [
        ("s", "start"),
        ("A", "fork"),
        ("B", "fork"),
        ("C", "transform"),
        ("D", "join"),
        ("E", "transform"),
        ("F", "join"),
        ("end", "end"),
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


def canvas_json(sig: Any) -> Any:
    return json.loads(json.dumps(sig))


def test_diamond_is_one_chain_with_a_chord() -> None:
    sig = canvas_json(compile(DIAMOND, "exe-1"))
    assert sig["subtask_type"] == "chain"
    tasks = sig["kwargs"]["tasks"]
    assert [t.get("subtask_type") for t in tasks] == [None, None, "chord", None]
    assert [t["args"] for t in tasks if t.get("subtask_type") is None] == [
        ["exe-1", "s"],
        ["exe-1", "f"],
        ["exe-1", "e"],
    ]
    chord = tasks[2]
    assert [h["args"][1] for h in chord["kwargs"]["header"]] == ["a", "b"]
    assert chord["kwargs"]["body"]["args"] == ["exe-1", "j"]
    assert all(t["immutable"] for t in tasks if t.get("subtask_type") is None)
    plan = compile_plan(DIAMOND)
    assert list(plan.regions) == ["s"] and not plan.counter_edges


def test_without_native_chords_the_join_uses_the_counter() -> None:
    plan = compile_plan(DIAMOND, chords=False)
    assert plan.counter_in["j"] == 2
    assert set(plan.regions) == {"s", "j"}
    assert '"type": "chord"' not in json.dumps(plan.to_json())


def test_non_series_parallel_joins_through_database_counters() -> None:
    plan = compile_plan(NON_SP)
    assert plan.counter_in == {"s": 0, "A": 0, "B": 0, "C": 1, "D": 2, "E": 1, "F": 3, "end": 0}
    # C depends only on A: its own region, published when A is done, not after B
    assert plan.counter_out["A"] == ("C", "D") or set(plan.counter_out["A"]) == {"C", "D"}
    assert plan.region_of["end"] == "F"
    doc = plan.to_json()
    assert {j["node"]: j["sources"] for j in doc["database_joins"]}["F"] == ["C", "D", "E"]


def test_delay_always_ends_its_canvas() -> None:
    w = wf(
        [("s", "start"), ("d", "delay"), ("t", "transform"), ("e", "end")],
        [("s", "d"), ("d", "t"), ("t", "e")],
    )
    plan = compile_plan(w)
    assert ("d", "t") in plan.counter_edges
    assert plan.region_of["t"] == "t" and plan.region_of["d"] == "s"


def test_chords_are_never_nested() -> None:
    # a fork inside a fork: the inner join goes through the counter, so no chord in a chord header
    w = wf(
        [
            ("s", "start"),
            ("f", "fork"),
            ("g", "fork"),
            ("x", "transform"),
            ("y", "transform"),
            ("k", "join"),
            ("z", "transform"),
            ("j", "join"),
            ("e", "end"),
        ],
        [
            ("s", "f"),
            ("f", "g"),
            ("f", "z"),
            ("g", "x"),
            ("g", "y"),
            ("x", "k"),
            ("y", "k"),
            ("k", "j"),
            ("z", "j"),
            ("j", "e"),
        ],
    )
    plan = compile_plan(w)

    def chords_inside(spec: Any, depth: int = 0) -> int:
        if isinstance(spec, Chord):
            assert depth == 0, "nested chord"
            return 1 + sum(chords_inside(h, depth + 1) for h in spec.header)
        return sum(chords_inside(i, depth) for i in getattr(spec, "items", ()))

    for spec in plan.regions.values():
        chords_inside(spec)


def test_condition_branches_are_a_group_joined_by_a_chord() -> None:
    w = wf(
        [
            ("s", "start"),
            ("c", "condition"),
            ("x", "transform"),
            ("y", "transform"),
            ("j", "join"),
            ("e", "end"),
        ],
        [("s", "c"), ("c", "x"), ("c", "y"), ("x", "j"), ("y", "j"), ("j", "e")],
    )
    doc = compile_plan(w).to_json()
    assert doc["regions"][0]["canvas"]["tasks"][2]["type"] == "chord"


def test_ten_thousand_node_compile_is_fast_and_complete() -> None:
    n = 10_000
    chain = wf(
        [("s", "start")] + [(f"n{i}", "transform") for i in range(n)] + [("e", "end")],
        [("s", "n0")] + [(f"n{i}", f"n{i + 1}") for i in range(n - 1)] + [(f"n{n - 1}", "e")],
    )
    plan = compile_plan(chain)
    assert len(plan.region_of) == n + 2
    # chains are cut every MAX_CANVAS_TASKS tasks: small messages, one counter per cut
    assert len(plan.regions) == -(-(n + 2) // MAX_CANVAS_TASKS)
    assert all(v <= 1 for v in plan.counter_in.values())


def test_long_chains_are_cut_into_canvases_of_bounded_length() -> None:
    n = 25
    chain = wf(
        [("s", "start")] + [(f"n{i}", "transform") for i in range(n)] + [("e", "end")],
        [("s", "n0")] + [(f"n{i}", f"n{i + 1}") for i in range(n - 1)] + [(f"n{n - 1}", "e")],
    )
    plan = compile_plan(chain, max_tasks=10)
    assert list(plan.regions) == ["s", "n9", "n19"]
    assert plan.counter_edges == {("n8", "n9"), ("n18", "n19")}
    assert compile_plan(chain, max_tasks=100).counter_edges == frozenset()


@st.composite
def random_dags(draw: Any) -> Workflow:
    """Layered random DAGs from one start to one end."""
    layers = draw(st.integers(1, 5))
    rnd = random.Random(draw(st.integers(0, 10**6)))
    nodes = [("s", "start")]
    edges: list[tuple[str, str]] = []
    prev = ["s"]
    for li in range(layers):
        layer = [f"l{li}n{k}" for k in range(rnd.randint(1, 4))]
        nodes += [(x, rnd.choice(["transform", "fork", "join", "delay"])) for x in layer]
        for x in layer:
            for p in rnd.sample(prev, rnd.randint(1, len(prev))):
                edges.append((p, x))
        for p in prev:  # every node must keep a way forward
            if not any(a == p for a, _ in edges):
                edges.append((p, rnd.choice(layer)))
        prev = layer
    nodes.append(("e", "end"))
    edges += [(p, "e") for p in prev]
    return wf(nodes, edges)


@settings(max_examples=150, deadline=None)
@given(random_dags(), st.booleans())
def test_every_node_lands_in_exactly_one_region_and_every_edge_is_canvas_or_counter(
    w: Workflow, chords: bool
) -> None:
    plan = compile_plan(w, chords=chords)
    assert set(plan.region_of) == {n.id for n in w.nodes}
    for node in w.nodes:
        kinds = {(e.source, e.target) in plan.counter_edges for e in w.in_edges[node.id]}
        # a node is fed either only by its canvas or only by the counter
        assert len(kinds) <= 1, node.id
        is_entry = node.id in plan.regions
        assert is_entry == (node.type == "start" or kinds == {True}), node.id
        assert plan.counter_in[node.id] == sum(
            1 for e in w.in_edges[node.id] if (e.source, e.target) in plan.counter_edges
        )
    # canvases reference each node once, and only nodes of their region
    for entry, spec in plan.regions.items():
        ids = [t["args"][1] for t in _tasks(canvas_json(to_signature(spec, "x")))]
        assert len(ids) == len(set(ids))
        assert all(plan.region_of[i] == entry for i in ids)
    # a canvas edge always goes from an earlier to a later task of the same canvas
    for e in w.edges:
        if (e.source, e.target) not in plan.counter_edges:
            assert plan.region_of[e.source] == plan.region_of[e.target]


def _tasks(sig: dict[str, Any]) -> list[dict[str, Any]]:
    kind = sig.get("subtask_type")
    if kind in ("chain", "group"):
        return [t for s in sig["kwargs"]["tasks"] for t in _tasks(s)]
    if kind == "chord":
        return [t for h in sig["kwargs"]["header"] for t in _tasks(h)] + _tasks(
            sig["kwargs"]["body"]
        )
    return [sig]
