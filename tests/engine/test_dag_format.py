"""engine/formats/dag.py: the DAG document's shape, the Workflow it builds, load_dag's report."""

from __future__ import annotations

import copy
import json
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from engine.errors import InvalidWorkflow, Problem
from engine.formats.dag import DAG_SCHEMA, load_dag, parse_dag, schema_problems
from engine.formats.dag import _predicate as predicate
from engine.formats.dag import _problems as problems_from
from engine.graph import NODE_TYPES, Edge, RetryPolicy

FIXTURES = Path(__file__).parent.parent / "fixtures" / "dag"
VALID_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.json") if not p.name.startswith("invalid"))


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def minimal(*middle: dict[str, Any]) -> dict[str, Any]:
    """start -> each middle node in turn -> end."""
    nodes = [{"id": "start", "type": "start"}, *middle, {"id": "end", "type": "end"}]
    ids = [n["id"] for n in nodes]
    return {"nodes": nodes, "edges": [{"source": a, "target": b} for a, b in pairwise(ids)]}


def problems_of(document: Any, load: Any = load_dag) -> list[Problem]:
    try:
        load(document)
    except InvalidWorkflow as exc:
        return exc.problems
    return []


def test_dag_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(DAG_SCHEMA)


def test_contract_example_builds_its_workflow() -> None:
    workflow = load_dag(fixture("contract_example.json"))

    assert [n.id for n in workflow.nodes] == [
        "start",
        "get_user",
        "is_vip",
        "wait",
        "split",
        "a",
        "b",
        "merge",
        "reply",
        "end",
    ]
    get_user = workflow.node_map["get_user"]
    assert get_user.type == "action"
    assert get_user.config["headers"] == {"Accept": "application/json"}
    assert get_user.retry == RetryPolicy(
        max_attempts=4, initial_seconds=1, multiplier=2, max_seconds=30, jitter=True
    )
    assert workflow.node_map["start"].config == {}
    assert workflow.node_map["start"].retry is None
    assert Edge("is_vip", "wait", "true") in workflow.edges
    assert Edge("is_vip", "end", "false") in workflow.edges
    assert Edge("split", "a") in workflow.edges
    assert len(workflow.edges) == 11
    assert workflow.format == "dag"
    assert workflow.meta == {}


@pytest.mark.parametrize("name", VALID_FIXTURES)
def test_valid_fixtures_load(name: str) -> None:
    workflow = load_dag(fixture(name))

    assert len(workflow.nodes) == len(fixture(name)["nodes"])


def test_node_fields_are_read() -> None:
    workflow = parse_dag(fixture("linear_action.json"))

    create = workflow.node_map["create"]
    assert workflow.name == "create an order"
    assert create.label == "POST the order"
    assert create.timeout_seconds == 30.0
    assert create.retry == RetryPolicy(5, 0.5, 3, 20, False)


def test_retry_without_max_attempts_keeps_the_type_default() -> None:
    document = minimal(
        {
            "id": "call",
            "type": "action",
            "config": {"method": "GET", "url": "http://x"},
            "retry": {"initial_seconds": 2},
        },
        {
            "id": "calc",
            "type": "transform",
            "config": {"expression": "."},
            "retry": {"jitter": True},
        },
    )

    workflow = parse_dag(document)

    assert workflow.node_map["call"].retry == RetryPolicy(max_attempts=3, initial_seconds=2)
    assert workflow.node_map["calc"].retry == RetryPolicy(max_attempts=1, jitter=True)


def test_parse_dag_checks_only_the_shape() -> None:
    document = minimal({"id": "a", "type": "fork"})
    document["edges"].append({"source": "a", "target": "a"})

    workflow = parse_dag(document)

    assert Edge("a", "a") in workflow.edges


ACTION = {"method": "GET", "url": "http://api.local/"}

# (node, pointer under /nodes/1) for one broken field each.
BROKEN_NODES = [
    ({"type": "action", "config": {**ACTION, "method": "FETCH"}}, "/config/method"),
    ({"type": "action", "config": {**ACTION, "method": "get"}}, "/config/method"),
    ({"type": "action", "config": {"method": "GET"}}, "/config/url"),
    ({"type": "action", "config": {"url": "http://x"}}, "/config/method"),
    ({"type": "action", "config": {**ACTION, "url": 5}}, "/config/url"),
    ({"type": "action", "config": {**ACTION, "headers": {"X-N": 1}}}, "/config/headers/X-N"),
    ({"type": "action", "config": {**ACTION, "headers": ["a"]}}, "/config/headers"),
    ({"type": "action", "config": {**ACTION, "query": "a=1"}}, "/config/query"),
    ({"type": "action", "config": {**ACTION, "timeout_seconds": 0}}, "/config/timeout_seconds"),
    ({"type": "action", "config": {**ACTION, "metod": "GET"}}, "/config/metod"),
    ({"type": "action"}, "/config"),
    ({"type": "condition", "config": {}}, "/config/expression"),
    ({"type": "condition", "config": {"expression": True}}, "/config/expression"),
    ({"type": "delay", "config": {}}, "/config"),
    ({"type": "delay", "config": {"seconds": 1, "until": "2030-01-01T00:00:00Z"}}, "/config"),
    ({"type": "delay", "config": {"seconds": -1}}, "/config/seconds"),
    ({"type": "delay", "config": {"seconds": "5"}}, "/config/seconds"),
    ({"type": "delay", "config": {"until": 5}}, "/config/until"),
    ({"type": "transform", "config": {}}, "/config"),
    ({"type": "transform", "config": {"expression": ".", "mapping": {}}}, "/config"),
    ({"type": "transform", "config": {"mapping": []}}, "/config/mapping"),
    ({"type": "webhook_response", "config": {"status": 99}}, "/config/status"),
    ({"type": "webhook_response", "config": {"status": 600}}, "/config/status"),
    ({"type": "webhook_response", "config": {"status": "200"}}, "/config/status"),
    ({"type": "webhook_response", "config": {"headers": {"A": None}}}, "/config/headers/A"),
    ({"type": "webhook_response", "config": {"code": 200}}, "/config/code"),
    ({"type": "fork", "config": {"branches": 2}}, "/config/branches"),
    ({"type": "join", "config": {"wait_for": "all"}}, "/config/wait_for"),
    ({"type": "fork", "config": "none"}, "/config"),
    ({"type": "fork", "retry": {"max_attempts": 0}}, "/retry/max_attempts"),
    ({"type": "fork", "retry": {"multiplier": 0.5}}, "/retry/multiplier"),
    ({"type": "fork", "retry": {"initial_seconds": -1}}, "/retry/initial_seconds"),
    ({"type": "fork", "retry": {"max_seconds": -1}}, "/retry/max_seconds"),
    ({"type": "fork", "retry": {"jitter": "yes"}}, "/retry/jitter"),
    ({"type": "fork", "retry": {"attempts": 3}}, "/retry/attempts"),
    ({"type": "fork", "timeout_seconds": 0}, "/timeout_seconds"),
    ({"type": "fork", "timeout_seconds": True}, "/timeout_seconds"),
    ({"type": "fork", "position": {"x": 0}}, "/position/y"),
    ({"type": "fork", "position": {"x": 0, "y": "top"}}, "/position/y"),
    ({"type": "fork", "label": 7}, "/label"),
    ({"type": "fork", "colour": "red"}, "/colour"),
    ({"type": "teleport"}, "/type"),
    ({}, "/type"),
]


@pytest.mark.parametrize(("fields", "pointer"), BROKEN_NODES)
def test_schema_points_at_the_broken_field(fields: dict[str, Any], pointer: str) -> None:
    document = minimal({"id": "x", **fields})

    problems = problems_of(document, parse_dag)

    assert [p.pointer for p in problems] == [f"/nodes/1{pointer}"]
    assert problems[0].node_id == "x"
    assert problems[0].message.startswith("node 'x': ")


def test_end_output_takes_any_json() -> None:
    for output in ("${ .input }", {"a": [1, "${ .input.b }"]}, 3, None):
        document = minimal()
        document["nodes"][1]["config"] = {"output": output}

        assert load_dag(document).ends[0].config == {"output": output}


@pytest.mark.parametrize(
    ("edge", "pointer"),
    [
        ({"source": "start", "target": "end", "when": "yes"}, "/edges/0/when"),
        ({"source": "start", "target": "end", "when": True}, "/edges/0/when"),
        ({"source": "start"}, "/edges/0/target"),
        ({"target": "end"}, "/edges/0/source"),
        ({"source": "start", "target": 3}, "/edges/0/target"),
        ({"source": "start", "target": "end", "kind": "x"}, "/edges/0/kind"),
    ],
)
def test_schema_checks_edges(edge: dict[str, Any], pointer: str) -> None:
    document = minimal()
    document["edges"] = [edge]

    assert pointer in {p.pointer for p in problems_of(document, parse_dag)}


@pytest.mark.parametrize(
    ("document", "pointers"),
    [
        (None, [""]),
        ([], [""]),
        ({}, ["/nodes", "/edges"]),
        ({"nodes": {}, "edges": []}, ["/nodes"]),
        ({"nodes": [], "edges": [], "name": 1}, ["/name"]),
        ({"nodes": ["start"], "edges": []}, ["/nodes/0"]),
    ],
)
def test_schema_checks_the_document(document: Any, pointers: list[str]) -> None:
    assert [p.pointer for p in schema_problems(document)] == pointers


def test_extra_top_level_fields_are_allowed() -> None:
    document = {**minimal(), "description": "for the editor", "version": 3}

    assert load_dag(document).name == ""


def test_every_shape_problem_is_reported_in_document_order() -> None:
    document = minimal(
        {"id": "a", "type": "action", "config": {"method": "FETCH", "url": 1}},
        {"id": "d", "type": "delay", "config": {}},
        {"id": "w", "type": "webhook_response", "config": {"status": 42}},
    )
    document["edges"][0]["when"] = "maybe"

    problems = schema_problems(document)

    assert [p.pointer for p in problems] == [
        "/nodes/1/config/method",
        "/nodes/1/config/url",
        "/nodes/2/config",
        "/nodes/3/config/status",
        "/edges/0/when",
    ]
    assert problems[2].message == "node 'd': needs exactly one of 'seconds' or 'until'"
    assert problems[4].message == "edge start->a: 'maybe' is not one of ['true', 'false']"


def test_nodes_are_ordered_numerically() -> None:
    middle = [{"id": f"f{i}", "type": "fork"} for i in range(11)]
    middle[1]["label"] = 1
    middle[10]["label"] = 1

    pointers = [p.pointer for p in schema_problems(minimal(*middle))]

    assert pointers == ["/nodes/2/label", "/nodes/11/label"]


def test_pointers_escape_slash_and_tilde() -> None:
    config = {**ACTION, "headers": {"a/b": 1, "c~d": 2}}

    pointers = {
        p.pointer for p in schema_problems(minimal({"id": "x", "type": "action", "config": config}))
    }

    assert pointers == {"/nodes/1/config/headers/a~1b", "/nodes/1/config/headers/c~0d"}


def test_load_dag_reports_shape_and_graph_problems_together() -> None:
    document = minimal(
        {"id": "a", "type": "action", "config": {"method": "FETCH", "url": "http://x"}}
    )
    document["nodes"].append({"id": "island", "type": "transform", "config": {"expression": "."}})
    document["edges"].append({"source": "a", "target": "a"})

    problems = problems_of(document)

    assert {(p.pointer, p.node_id) for p in problems} == {
        ("/nodes/1/config/method", "a"),
        ("/nodes/3", "island"),  # not reachable from start
        ("/edges/2", None),  # the self-loop
    }
    assert len(problems) == 4  # island cannot reach an end either


def test_load_dag_reports_an_unknown_type_once() -> None:
    document = minimal({"id": "x", "type": "teleport"})

    problems = problems_of(document)

    assert [p.pointer for p in problems] == ["/nodes/1/type"]
    assert "not one of" in problems[0].message


def test_load_dag_reports_a_missing_type_once() -> None:
    document = minimal({"id": "x"})

    problems = problems_of(document)

    assert [(p.pointer, p.message) for p in problems] == [
        ("/nodes/1/type", "node 'x': 'type' is required")
    ]


def test_graph_checks_keep_document_pointers_when_items_are_left_out() -> None:
    document = minimal({"id": "a", "type": "fork"})
    document["nodes"].insert(1, {"type": "fork"})  # no id: cannot be part of the graph
    document["edges"].insert(0, {"source": 7, "target": "a"})  # unreadable endpoints
    document["nodes"].append({"id": "island", "type": "join"})
    document["edges"].append({"source": "a", "target": "ghost"})

    problems = problems_of(document)

    assert {(p.pointer, p.node_id) for p in problems} == {
        ("/nodes/1/id", None),
        ("/edges/0/source", None),
        ("/nodes/4", "island"),
        ("/edges/3", None),
    }
    ghost = next(p for p in problems if p.pointer == "/edges/3")
    assert ghost.message == "edge a->ghost: target node 'ghost' does not exist"


def test_load_dag_with_no_graph_reports_the_shape() -> None:
    problems = problems_of({"nodes": "none", "edges": []})

    assert [p.pointer for p in problems] == ["/nodes"]


def test_invalid_fixture_reports_every_problem() -> None:
    problems = problems_of(fixture("invalid_many_problems.json"))

    found = {(p.pointer, p.node_id) for p in problems}
    assert found == {
        ("/nodes/1/config/method", "fetch"),  # FETCH
        ("/nodes/3/config/expression", "loop_b"),  # jq syntax
        ("/nodes/4/type", "mystery"),  # teleport
        ("/edges/1/when", None),  # when out of an action
        ("/edges/3", "loop_a"),  # the cycle, closed by loop_b->loop_a
    }
    cycle = next(p for p in problems if p.pointer == "/edges/3")
    assert cycle.message == "cycle: loop_a -> loop_b -> loop_a"


def test_document_is_not_changed() -> None:
    document = fixture("contract_example.json")
    before = copy.deepcopy(document)

    load_dag(document)

    assert document == before


# --- the fast checks agree with jsonschema on DAG_SCHEMA itself -------------------------------

FULL_VALIDATOR = Draft202012Validator(DAG_SCHEMA)
MAYBE = object()  # a field left out

CONFIG_POOL = [
    MAYBE,
    {},
    [],
    "x",
    {"expression": "."},
    {"expression": 1},
    {"mapping": {}},
    {"expression": ".", "mapping": {}},
    {"seconds": 0},
    {"seconds": -0.5},
    {"seconds": True},
    {"until": "2030-01-01"},
    {"seconds": 1, "until": "x"},
    ACTION,
    {**ACTION, "method": "get"},
    {**ACTION, "timeout_seconds": 0},
    {**ACTION, "timeout_seconds": float("nan")},
    {**ACTION, "headers": {"A": "b", "C": 1}},
    {"status": 200},
    {"status": 200.0},
    {"status": 600},
    {"status": 99.5},
    {"output": None},
    {"output": "${ . }", "x": 1},
    {"method": "GET"},
]


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.just(MAYBE), strategy)


def drop_missing(fields: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not MAYBE}


nodes_strategy = st.builds(
    drop_missing,
    st.fixed_dictionaries(
        {
            "id": maybe(st.sampled_from(["a", "b", "", 5])),
            "type": maybe(st.sampled_from([*sorted(NODE_TYPES), "teleport", 3, None, ["action"]])),
            "config": st.sampled_from(CONFIG_POOL),
            "retry": maybe(
                st.sampled_from(
                    [
                        {},
                        {"max_attempts": 0},
                        {"max_attempts": 2.0},
                        {"multiplier": 1},
                        {"jitter": 1},
                    ]
                )
            ),
            "timeout_seconds": maybe(st.sampled_from([1, 0, -1, True, "5", float("nan"), 10**400])),
            "position": maybe(
                st.sampled_from([{"x": 0, "y": 0}, {"x": 0}, {"x": 0, "y": 1, "z": 2}])
            ),
            "label": maybe(st.sampled_from(["", "ok", 1])),
            "colour": maybe(st.just("red")),
        }
    ),
) | st.sampled_from([None, "node", 3])
edges_strategy = st.builds(
    drop_missing,
    st.fixed_dictionaries(
        {
            "source": maybe(st.sampled_from(["a", "b", "", 1])),
            "target": maybe(st.sampled_from(["a", "b", None])),
            "when": maybe(st.sampled_from(["true", "false", "yes", True])),
            "label": maybe(st.just("x")),
        }
    ),
)
documents_strategy = st.one_of(
    st.builds(
        drop_missing,
        st.fixed_dictionaries(
            {
                "nodes": maybe(st.lists(nodes_strategy, max_size=4) | st.just({})),
                "edges": maybe(st.lists(edges_strategy, max_size=3)),
                "name": maybe(st.sampled_from(["n", 1])),
            }
        ),
    ),
    st.sampled_from([None, [], "dag"]),
)


@settings(max_examples=300, deadline=None)
@given(documents_strategy)
def test_fast_checks_agree_with_jsonschema(document: Any) -> None:
    expected = problems_from(document, ((e, ()) for e in FULL_VALIDATOR.iter_errors(document)))

    assert predicate(DAG_SCHEMA)(document) == (not expected)
    assert {(p.pointer, p.message, p.node_id) for p in schema_problems(document)} == {
        (p.pointer, p.message, p.node_id) for p in expected
    }


@settings(max_examples=300, deadline=None)
@given(documents_strategy)
def test_load_dag_raises_only_invalid_workflow(document: Any) -> None:
    try:
        workflow = load_dag(document)
    except InvalidWorkflow as exc:
        assert exc.problems
    else:
        assert workflow.start.type == "start"


def test_fast_checks_refuse_keywords_they_do_not_know() -> None:
    with pytest.raises(NotImplementedError, match="pattern"):
        predicate({"type": "string", "pattern": "^a"})
