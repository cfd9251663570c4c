"""Taken edges, skips and node inputs as CONTRACT.md 1a defines them."""

from __future__ import annotations

from engine.graph import Edge, Node, Workflow
from engine.semantics import (
    StepView,
    edge_taken,
    node_input,
    predecessors_done,
    taken_sources,
    truthy,
)

W = Workflow(
    (
        Node("s", "start"),
        Node("c", "condition"),
        Node("x", "transform"),
        Node("y", "transform"),
        Node("j", "join"),
        Node("e", "end"),
    ),
    (
        Edge("s", "c"),
        Edge("c", "x", "true"),
        Edge("c", "y", "false"),
        Edge("x", "j"),
        Edge("y", "j"),
        Edge("j", "e"),
    ),
)


def test_jq_truthiness() -> None:
    assert [truthy(v) for v in (None, False, 0, "", [], {}, True)] == [
        False,
        False,
        True,
        True,
        True,
        True,
        True,
    ]


def test_condition_edges_follow_the_result() -> None:
    yes = StepView("succeeded", {"result": True})
    no = StepView("succeeded", {"result": False})
    assert edge_taken(Edge("c", "x", "true"), "condition", yes)
    assert not edge_taken(Edge("c", "y", "false"), "condition", yes)
    assert edge_taken(Edge("c", "y", "false"), "condition", no)
    assert not edge_taken(Edge("s", "c"), "start", StepView("skipped"))
    assert not edge_taken(Edge("s", "c"), "start", None)


def test_join_after_if_else_takes_the_branch_that_ran() -> None:
    steps = {"x": StepView("succeeded", 1), "y": StepView("skipped")}
    assert predecessors_done(W, "j", steps)
    assert taken_sources(W, "j", steps) == ["x"]
    assert node_input(W, "j", ["x"], steps, None) == {"x": 1}  # joins always give the object


def test_skip_flows_on_when_no_edge_is_taken() -> None:
    steps = {"c": StepView("succeeded", {"result": False})}
    assert taken_sources(W, "x", steps) == []


def test_inputs_one_source_as_is_several_as_object() -> None:
    w = Workflow(
        (Node("a", "transform"), Node("b", "transform"), Node("t", "transform")),
        (Edge("a", "t"), Edge("b", "t")),
    )
    steps = {"a": StepView("succeeded", 1), "b": StepView("succeeded", 2)}
    assert node_input(w, "t", ["a", "b"], steps, None) == {"a": 1, "b": 2}
    assert node_input(w, "t", ["a"], steps, None) == 1
    assert not predecessors_done(w, "t", {"a": StepView("running")})
