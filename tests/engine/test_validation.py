"""engine/validation.py: every graph and expression rule, all reported at once."""

from __future__ import annotations

import copy
import random
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.errors import InvalidWorkflow, Problem
from engine.formats.dag import load_dag
from engine.graph import Edge, Node, Workflow
from engine.validation import validate

NodeSpec = tuple[str, str] | tuple[str, str, dict[str, Any]]
EdgeSpec = tuple[str, str] | tuple[str, str, str]


def make(nodes: list[NodeSpec], edges: list[EdgeSpec], **meta: Any) -> Workflow:
    """A Workflow from (id, type[, config]) and (source, target[, when]) tuples."""
    return Workflow(
        nodes=tuple(Node(spec[0], spec[1], spec[2] if len(spec) > 2 else {}) for spec in nodes),
        edges=tuple(Edge(*spec) for spec in edges),
        meta=meta,
    )


def chain(*middle: NodeSpec) -> Workflow:
    """start -> each middle node in turn -> end."""
    nodes: list[NodeSpec] = [("start", "start"), *middle, ("end", "end")]
    return make(nodes, [(a[0], b[0]) for a, b in pairwise(nodes)])


def found(problems: list[Problem]) -> set[tuple[str, str]]:
    return {(p.pointer, p.message) for p in problems}


def test_a_chain_is_valid() -> None:
    assert validate(chain(("a", "fork"), ("b", "join"))) == []


def test_no_start() -> None:
    workflow = make([("a", "fork"), ("end", "end")], [("a", "end")])

    assert found(validate(workflow)) == {("/nodes", "no start node: a workflow needs exactly one")}


def test_several_starts_are_each_named() -> None:
    workflow = make(
        [("s1", "start"), ("s2", "start"), ("end", "end")], [("s1", "end"), ("s2", "end")]
    )

    message = "2 start nodes ('s1', 's2'): a workflow needs exactly one"
    assert found(validate(workflow)) == {("/nodes/0", message), ("/nodes/1", message)}
    assert {p.node_id for p in validate(workflow)} == {"s1", "s2"}


def test_no_end() -> None:
    workflow = make([("start", "start"), ("a", "fork")], [("start", "a")])

    assert found(validate(workflow)) == {("/nodes", "no end node: a workflow needs at least one")}


def test_duplicate_ids_name_both_pointers() -> None:
    workflow = make(
        [("start", "start"), ("a", "fork"), ("a", "join"), ("end", "end")],
        [("start", "a"), ("a", "end")],
    )

    problems = validate(workflow)

    assert found(problems) == {("/nodes/2", "duplicate node id 'a': also used by /nodes/1")}
    assert problems[0].node_id == "a"


def test_unknown_type() -> None:
    problems = validate(chain(("x", "teleport")))

    assert [(p.pointer, p.node_id) for p in problems] == [("/nodes/1/type", "x")]
    assert problems[0].message.startswith("node 'x' has unknown type 'teleport' (known: action, ")


def test_edges_to_missing_nodes_are_named() -> None:
    workflow = make(
        [("start", "start"), ("end", "end")],
        [("start", "end"), ("start", "ghost"), ("phantom", "end")],
    )

    assert found(validate(workflow)) == {
        ("/edges/1", "edge start->ghost: target node 'ghost' does not exist"),
        ("/edges/2", "edge phantom->end: source node 'phantom' does not exist"),
    }


def test_duplicate_edge() -> None:
    workflow = make([("start", "start"), ("end", "end")], [("start", "end"), ("start", "end")])

    assert found(validate(workflow)) == {
        ("/edges/1", "edge start->end: duplicate edge: also at /edges/0")
    }


def test_self_loop_is_reported_once() -> None:
    workflow = make(
        [("start", "start"), ("a", "fork"), ("end", "end")],
        [("start", "a"), ("a", "end"), ("a", "a")],
    )

    assert found(validate(workflow)) == {("/edges/2", "edge a->a: node 'a' leads to itself")}


def test_cycle_names_its_nodes_in_order() -> None:
    workflow = make(
        [("start", "start"), ("a", "fork"), ("b", "fork"), ("c", "fork"), ("end", "end")],
        [("start", "a"), ("a", "b"), ("b", "c"), ("c", "a"), ("c", "end")],
    )

    problems = validate(workflow)

    assert found(problems) == {("/edges/3", "cycle: a -> b -> c -> a")}
    assert problems[0].node_id == "a"


def test_cycle_starts_at_the_node_declared_first() -> None:
    workflow = make(
        [("start", "start"), ("c", "fork"), ("a", "fork"), ("b", "fork"), ("end", "end")],
        [("start", "a"), ("a", "b"), ("b", "c"), ("c", "a"), ("c", "end")],
    )

    assert found(validate(workflow)) == {("/edges/2", "cycle: c -> a -> b -> c")}


def test_a_tangle_names_one_cycle_and_the_rest() -> None:
    workflow = make(
        [("start", "start"), ("a", "fork"), ("b", "fork"), ("c", "fork"), ("end", "end")],
        [("start", "a"), ("a", "b"), ("b", "a"), ("b", "c"), ("c", "b"), ("c", "end")],
    )

    assert found(validate(workflow)) == {
        ("/edges/2", "cycle: a -> b -> a (also on cycles with it: c)")
    }


def test_separate_cycles_are_each_reported() -> None:
    workflow = make(
        [
            ("start", "start"),
            ("a", "fork"),
            ("b", "fork"),
            ("c", "fork"),
            ("d", "fork"),
            ("end", "end"),
        ],
        [("start", "a"), ("a", "b"), ("b", "a"), ("b", "c"), ("c", "d"), ("d", "c"), ("d", "end")],
    )

    assert found(validate(workflow)) == {
        ("/edges/2", "cycle: a -> b -> a"),
        ("/edges/5", "cycle: c -> d -> c"),
    }


def test_unreachable_nodes_are_named() -> None:
    workflow = make(
        [("start", "start"), ("orphan", "fork"), ("end", "end")],
        [("start", "end"), ("orphan", "end")],
    )

    problems = validate(workflow)

    assert found(problems) == {("/nodes/1", "node 'orphan' is not reachable from the start node")}
    assert problems[0].node_id == "orphan"


def test_nodes_that_cannot_reach_an_end_are_named() -> None:
    workflow = make(
        [("start", "start"), ("stuck", "fork"), ("also", "join"), ("end", "end")],
        [("start", "end"), ("start", "stuck"), ("stuck", "also")],
    )

    assert found(validate(workflow)) == {
        ("/nodes/1", "node 'stuck' cannot reach an end node"),
        ("/nodes/2", "node 'also' cannot reach an end node"),
    }


def test_when_only_out_of_a_condition() -> None:
    workflow = make(
        [("start", "start"), ("a", "fork"), ("end", "end")],
        [("start", "a", "true"), ("a", "end")],
    )

    assert found(validate(workflow)) == {
        (
            "/edges/0/when",
            "edge start->a: 'when' is only allowed out of a condition; 'start' is of type start",
        )
    }


def test_when_is_true_or_false() -> None:
    workflow = make(
        [("start", "start"), ("c", "condition", {"expression": ".x"}), ("end", "end")],
        [("start", "c"), ("c", "end", "yes")],
    )

    assert found(validate(workflow)) == {
        ("/edges/1/when", 'edge c->end: when must be "true" or "false", not \'yes\'')
    }


def test_condition_edges_may_be_untagged() -> None:
    workflow = make(
        [
            ("start", "start"),
            ("c", "condition", {"expression": ".x"}),
            ("a", "fork"),
            ("end", "end"),
        ],
        [("start", "c"), ("c", "a", "true"), ("c", "end"), ("a", "end")],
    )

    assert validate(workflow) == []


def test_condition_without_outgoing_edges() -> None:
    workflow = make(
        [("start", "start"), ("c", "condition", {"expression": ".x"}), ("end", "end")],
        [("start", "c"), ("start", "end")],
    )

    assert found(validate(workflow)) == {("/nodes/1", "condition 'c' has no outgoing edges")}


def test_start_has_no_incoming_edges() -> None:
    workflow = make(
        [("start", "start"), ("a", "fork"), ("end", "end")],
        [("start", "a"), ("a", "start"), ("a", "end")],
    )

    problems = validate(workflow)

    assert ("/edges/1", "edge a->start: enters the start node 'start'") in found(problems)
    assert ("/edges/1", "cycle: start -> a -> start") in found(problems)


def test_end_has_no_outgoing_edges() -> None:
    workflow = make(
        [("start", "start"), ("end", "end"), ("after", "end")],
        [("start", "end"), ("end", "after")],
    )

    assert found(validate(workflow)) == {("/edges/1", "edge end->after: leaves the end node 'end'")}


def test_pointers_come_from_meta_when_given() -> None:
    workflow = make(
        [("start", "start"), ("x", "teleport"), ("end", "end")],
        [("start", "x"), ("x", "end"), ("x", "ghost")],
        node_pointers=("/do/0", "/do/1", "/do/2"),
        edge_pointers=("/e/a", "/e/b", "/e/c"),
    )

    assert {p.pointer for p in validate(workflow)} == {"/do/1/type", "/e/c"}


# --- expressions ----------------------------------------------------------------------------

BAD_JQ = ". + {"


@pytest.mark.parametrize(
    ("node", "pointer"),
    [
        (("c", "condition", {"expression": BAD_JQ}), "/config/expression"),
        (("t", "transform", {"expression": BAD_JQ}), "/config/expression"),
        (
            ("t", "transform", {"mapping": {"greeting": "hi ${ " + BAD_JQ + " }"}}),
            "/config/mapping/greeting",
        ),
        (
            ("t", "transform", {"mapping": {"deep": [1, {"v": "${ " + BAD_JQ + " }"}]}}),
            "/config/mapping/deep/1/v",
        ),
        (("a", "action", {"method": "GET", "url": "http://x/${ " + BAD_JQ + " }"}), "/config/url"),
        (
            (
                "a",
                "action",
                {"method": "GET", "url": "http://x", "headers": {"X": "${ " + BAD_JQ + " }"}},
            ),
            "/config/headers/X",
        ),
        (
            (
                "a",
                "action",
                {"method": "GET", "url": "http://x", "query": {"q": "${ " + BAD_JQ + " }"}},
            ),
            "/config/query/q",
        ),
        (
            ("a", "action", {"method": "POST", "url": "http://x", "body": "${ " + BAD_JQ + " }"}),
            "/config/body",
        ),
        (("w", "webhook_response", {"body": {"b": "${ " + BAD_JQ + " }"}}), "/config/body/b"),
        (("w", "webhook_response", {"headers": {"H": "${ " + BAD_JQ + " }"}}), "/config/headers/H"),
        (("d", "delay", {"until": "${ " + BAD_JQ + " }"}), "/config/until"),
    ],
)
def test_bad_jq_is_reported_where_it_is(node: NodeSpec, pointer: str) -> None:
    problems = validate(chain(node))

    assert [(p.pointer, p.node_id) for p in problems] == [(f"/nodes/1{pointer}", node[0])]
    assert problems[0].message.startswith(f"node '{node[0]}': in ")


def test_bad_jq_in_end_output() -> None:
    workflow = make(
        [("start", "start"), ("end", "end", {"output": {"r": "${ " + BAD_JQ + " }"}})],
        [("start", "end")],
    )

    assert [p.pointer for p in validate(workflow)] == ["/nodes/1/config/output/r"]


def test_good_expressions_pass() -> None:
    workflow = chain(
        ("c", "condition", {"expression": ".input.n > 2"}),
        ("t", "transform", {"mapping": {"s": "n=${ .input.n }", "whole": "${ .input }", "k": 1}}),
        ("a", "action", {"method": "GET", "url": "http://x/${ .input.id }", "body": {"n": 2}}),
        ("d", "delay", {"until": "2030-01-01T10:00:00Z"}),
        ("w", "webhook_response", {"status": 201, "body": "${ .steps.t.output }"}),
    )

    assert validate(workflow) == []


@pytest.mark.parametrize("until", ["2030-01-01", "2030-01-01T10:00:00+02:00", "2030-01-01 10:00"])
def test_delay_until_iso_times_pass(until: str) -> None:
    assert validate(chain(("d", "delay", {"until": until}))) == []


def test_delay_until_neither_time_nor_expression() -> None:
    problems = validate(chain(("d", "delay", {"until": "tomorrow"})))

    assert found(problems) == {
        (
            "/nodes/1/config/until",
            "node 'd': until must be an ISO 8601 time or a ${ expression }, not 'tomorrow'",
        )
    }


def test_expressions_of_the_wrong_shape_are_left_to_the_schema() -> None:
    workflow = chain(("c", "condition", {"expression": 5}), ("d", "delay", {"until": 3}))

    assert validate(workflow) == []


# --- everything at once -----------------------------------------------------------------------


def test_every_problem_is_reported_at_once() -> None:
    workflow = make(
        [
            ("start", "start"),
            ("a", "fork"),
            ("b", "join"),
            ("x", "teleport"),
            ("c", "condition", {"expression": BAD_JQ}),
            ("end", "end"),
        ],
        [
            ("start", "a"),
            ("a", "b"),
            ("b", "a"),
            ("b", "x", "true"),
            ("x", "c"),
            ("c", "end", "true"),
        ],
    )

    pointers = [p.pointer for p in validate(workflow)]

    assert sorted(pointers) == sorted(
        ["/nodes/3/type", "/edges/3/when", "/edges/2", "/nodes/4/config/expression"]
    )


def test_large_chain_and_fork_are_valid() -> None:
    n = 10_000
    ids = [f"n{i}" for i in range(n)]
    nodes: list[NodeSpec] = [
        ("start", "start"),
        *((i, "transform", {"expression": "."}) for i in ids),
        ("end", "end"),
    ]
    path = ["start", *ids, "end"]
    assert validate(make(nodes, list(pairwise(path)))) == []

    wide: list[NodeSpec] = [
        ("start", "start"),
        ("f", "fork"),
        *((i, "fork") for i in ids),
        ("j", "join"),
        ("end", "end"),
    ]
    edges: list[EdgeSpec] = [
        ("start", "f"),
        *(("f", i) for i in ids),
        *((i, "j") for i in ids),
        ("j", "end"),
    ]
    assert validate(make(wide, edges)) == []


def test_large_cycle_is_found_without_recursion() -> None:
    ids = [f"n{i}" for i in range(5_000)]
    nodes: list[NodeSpec] = [("start", "start"), *((i, "fork") for i in ids), ("end", "end")]
    path = ["start", *ids, "end"]
    edges: list[EdgeSpec] = [*pairwise(path), (ids[-1], ids[0])]

    (problem,) = validate(make(nodes, edges))

    assert problem.message.startswith("cycle: n0 -> n1 -> n2 -> ")
    assert problem.message.endswith(" -> n4999 -> n0")


# --- property-based: random valid DAGs, then one corruption at a time ---------------------------

URL = "http://api.local/items/${ .input.id }"
# Valid configs to pick from, per type (None: the type takes none).
CONFIGS: dict[str, list[dict[str, Any]] | None] = {
    "action": [
        {"method": "GET", "url": URL},
        {"method": "POST", "url": URL, "body": {"n": "${ .input.n }"}},
        {"method": "DELETE", "url": URL, "headers": {"X-Id": "${ .input.id }"}},
    ],
    "transform": [{"expression": ".node.input"}, {"mapping": {"n": 1, "s": "id ${ .input.id }"}}],
    "delay": [
        {"seconds": 0},
        {"seconds": 2.5},
        {"until": "2030-01-01T00:00:00Z"},
        {"until": "${ .input.at }"},
    ],
    "condition": [{"expression": ".input.flag"}, {"expression": ".input.n > 3"}],
    "fork": None,
    "join": None,
}
WORK_TYPES = sorted(CONFIGS)


@st.composite
def valid_dags(draw: st.DrawFn, min_layers: int = 0) -> dict[str, Any]:
    """A random layered DAG from one start to one or two ends, nodes and edges shuffled."""
    widths = draw(st.lists(st.integers(1, 4), min_size=min_layers, max_size=5))
    n_ends = draw(st.integers(1, 2))
    # Layer sizes and node types are drawn; configs and edges come from one seeded Random,
    # which keeps generation fast (a hypothesis draw for every choice took ~10 ms an example).
    rng = random.Random(draw(st.integers(0, 2**32 - 1)))
    layers: list[list[str]] = [["start"]]
    types = {"start": "start"}
    nodes = [{"id": "start", "type": "start"}]
    for depth, width in enumerate(widths):
        # A condition needs two distinct targets for its true and false edges.
        later = sum(widths[depth + 1 :]) + n_ends
        choices = WORK_TYPES if later >= 2 else [t for t in WORK_TYPES if t != "condition"]
        layer = []
        for k in range(width):
            node_id = f"n{depth}_{k}"
            type_ = draw(st.sampled_from(choices))
            node: dict[str, Any] = {"id": node_id, "type": type_}
            if CONFIGS[type_] is not None:
                node["config"] = copy.deepcopy(rng.choice(CONFIGS[type_]))  # type: ignore[arg-type]
            nodes.append(node)
            types[node_id] = type_
            layer.append(node_id)
        layers.append(layer)
    ends = ["end", "end2"][:n_ends]
    layers.append(ends)
    nodes += [{"id": end, "type": "end"} for end in ends]
    types.update({end: "end" for end in ends})

    edges: dict[tuple[str, str], str | None] = {}
    for depth, layer in enumerate(layers[:-1]):
        later_ids = [n for following in layers[depth + 1 :] for n in following]
        for node_id in layer:
            if types[node_id] == "condition":
                yes, no = rng.sample(later_ids, 2)
                edges[(node_id, yes)] = "true"
                edges[(node_id, no)] = "false"
            else:
                for target in rng.sample(later_ids, rng.randint(1, min(3, len(later_ids)))):
                    edges[(node_id, target)] = None
    # Every node below the start needs a way in: from an earlier node that is not a condition.
    entered = {target for _, target in edges}
    for depth, layer in enumerate(layers[1:], start=1):
        earlier = [n for previous in layers[:depth] for n in previous if types[n] != "condition"]
        for node_id in layer:
            if node_id not in entered:
                edges[(rng.choice(earlier), node_id)] = None

    edge_list = [
        {"source": s, "target": t, **({"when": when} if when else {})}
        for (s, t), when in edges.items()
    ]
    rng.shuffle(nodes)
    rng.shuffle(edge_list)
    return {"nodes": nodes, "edges": edge_list}


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def problems_of(document: dict[str, Any]) -> list[Problem]:
    try:
        load_dag(document)
    except InvalidWorkflow as exc:
        return exc.problems
    return []


def types_of(document: dict[str, Any]) -> dict[str, str]:
    return {node["id"]: node["type"] for node in document["nodes"]}


def index_of(document: dict[str, Any], node_id: str) -> int:
    return next(i for i, node in enumerate(document["nodes"]) if node["id"] == node_id)


@PROPERTY
@given(valid_dags())
def test_random_valid_dags_have_no_problems(document: dict[str, Any]) -> None:
    assert problems_of(document) == []


@PROPERTY
@given(valid_dags(min_layers=2), st.data())
def test_a_back_edge_is_reported_as_a_cycle(document: dict[str, Any], data: st.DataObject) -> None:
    types = types_of(document)
    forward = [
        e
        for e in document["edges"]
        if types[e["source"]] != "start" and types[e["target"]] != "end"
    ]
    assume(forward)  # an edge between two middle nodes, to turn around
    edge = data.draw(st.sampled_from(forward))
    back = {"source": edge["target"], "target": edge["source"]}
    if types[back["source"]] == "condition":
        back["when"] = "true"
    document["edges"].append(back)

    (problem,) = problems_of(document)

    assert problem.message.startswith("cycle: ")
    path = problem.message.removeprefix("cycle: ").split(" (also")[0].split(" -> ")
    others = problem.message.split("(also on cycles with it: ")[-1].rstrip(")").split(", ")
    assert path[0] == path[-1] == problem.node_id
    pairs = {(e["source"], e["target"]) for e in document["edges"]}
    assert all(pair in pairs for pair in pairwise(path))
    assert {edge["source"], edge["target"]} <= set(path) | set(others)


@PROPERTY
@given(valid_dags())
def test_a_missing_start_is_reported(document: dict[str, Any]) -> None:
    document["nodes"] = [n for n in document["nodes"] if n["type"] != "start"]

    problems = problems_of(document)

    from_start = {f"/edges/{i}" for i, e in enumerate(document["edges"]) if e["source"] == "start"}
    assert {p.pointer for p in problems} == {"/nodes"} | from_start
    assert "no start node: a workflow needs exactly one" in {p.message for p in problems}


@PROPERTY
@given(valid_dags(min_layers=1), st.data())
def test_a_duplicate_id_is_reported(document: dict[str, Any], data: st.DataObject) -> None:
    middle = [n for n in document["nodes"] if n["type"] not in ("start", "end")]
    original = data.draw(st.sampled_from(middle))
    document["nodes"].append(copy.deepcopy(original))

    problems = problems_of(document)

    first = index_of(document, original["id"])
    assert found(problems) == {
        (
            f"/nodes/{len(document['nodes']) - 1}",
            f"duplicate node id '{original['id']}': also used by /nodes/{first}",
        )
    }


@PROPERTY
@given(valid_dags(), st.data())
def test_an_edge_to_a_missing_node_is_reported(
    document: dict[str, Any], data: st.DataObject
) -> None:
    sources = [n["id"] for n in document["nodes"] if n["type"] not in ("condition", "end")]
    source = data.draw(st.sampled_from(sources))
    document["edges"].append({"source": source, "target": "ghost"})

    problems = problems_of(document)

    assert found(problems) == {
        (
            f"/edges/{len(document['edges']) - 1}",
            f"edge {source}->ghost: target node 'ghost' does not exist",
        )
    }


@PROPERTY
@given(valid_dags(), st.data(), st.sampled_from(["true", "false"]))
def test_when_on_a_plain_edge_is_reported(
    document: dict[str, Any], data: st.DataObject, when: str
) -> None:
    types = types_of(document)
    plain = [i for i, e in enumerate(document["edges"]) if types[e["source"]] != "condition"]
    index = data.draw(st.sampled_from(plain))
    document["edges"][index]["when"] = when

    problems = problems_of(document)

    assert [(p.pointer, p.node_id) for p in problems] == [(f"/edges/{index}/when", None)]
    assert "'when' is only allowed out of a condition" in problems[0].message


ISLAND_CONFIGS = {
    "action": {"method": "GET", "url": "http://x"},
    "condition": {"expression": "."},
    "delay": {"seconds": 1},
    "transform": {"expression": "."},
}


@PROPERTY
@given(valid_dags(), st.sampled_from(WORK_TYPES))
def test_an_isolated_node_is_reported(document: dict[str, Any], type_: str) -> None:
    island: dict[str, Any] = {"id": "island", "type": type_}
    if type_ in ISLAND_CONFIGS:
        island["config"] = ISLAND_CONFIGS[type_]
    document["nodes"].append(island)

    problems = problems_of(document)

    pointer = f"/nodes/{len(document['nodes']) - 1}"
    if type_ == "condition":
        assert found(problems) == {
            (pointer, "node 'island' is not reachable from the start node"),
            (pointer, "condition 'island' has no outgoing edges"),
        }
    else:
        assert found(problems) == {
            (pointer, "node 'island' is not reachable from the start node"),
            (pointer, "node 'island' cannot reach an end node"),
        }


BREAKS: dict[str, tuple[dict[str, Any], str]] = {
    # type: (config fields to merge in, pointer under the node)
    "action": ({"method": "FETCH"}, "/config/method"),
    "condition": ({"expression": BAD_JQ}, "/config/expression"),
    "delay": ({"seconds": 1, "until": "2030-01-01T00:00:00Z"}, "/config"),
    "transform": ({"expression": ".", "mapping": {}}, "/config"),
    "fork": ({"branches": 2}, "/config/branches"),
    "join": ({"wait_for": "all"}, "/config/wait_for"),
}


@PROPERTY
@given(valid_dags(min_layers=1), st.data())
def test_a_broken_config_is_reported(document: dict[str, Any], data: st.DataObject) -> None:
    middle = [i for i, n in enumerate(document["nodes"]) if n["type"] in BREAKS]
    index = data.draw(st.sampled_from(middle))
    node = document["nodes"][index]
    fields, pointer = BREAKS[node["type"]]
    node["config"] = {**node.get("config", {}), **fields}

    problems = problems_of(document)

    assert [(p.pointer, p.node_id) for p in problems] == [(f"/nodes/{index}{pointer}", node["id"])]


@PROPERTY
@given(valid_dags(min_layers=1), st.data())
def test_independent_corruptions_are_reported_together(
    document: dict[str, Any], data: st.DataObject
) -> None:
    types = types_of(document)
    plain = [i for i, e in enumerate(document["edges"]) if types[e["source"]] != "condition"]
    when_at = data.draw(st.sampled_from(plain))
    document["edges"][when_at]["when"] = "true"
    document["edges"].append({"source": "start", "target": "ghost"})
    document["nodes"].append({"id": "island", "type": "fork"})
    document["nodes"].append({"id": "mystery", "type": "teleport"})
    document["edges"] += [
        {"source": "start", "target": "mystery"},
        {"source": "mystery", "target": "end"},
    ]

    pointers = {p.pointer for p in problems_of(document)}

    n_nodes, n_edges = len(document["nodes"]), len(document["edges"])
    assert pointers == {
        f"/edges/{when_at}/when",
        f"/edges/{n_edges - 3}",  # start->ghost
        f"/nodes/{n_nodes - 2}",  # island
        f"/nodes/{n_nodes - 1}/type",  # mystery
    }
