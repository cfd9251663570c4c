"""Check a Workflow for every problem at once, each located by a JSON pointer.

Pointers follow the DAG format, ``/nodes/<index>`` and ``/edges/<index>`` in declaration
order. A parser whose document is laid out differently, or that left unreadable items
out, passes its own in ``workflow.meta["node_pointers"]`` and ``["edge_pointers"]``, one
per node and edge. Every check is linear in nodes plus edges: 10,000-node graphs are
validated on each save.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from .errors import Problem
from .graph import NODE_TYPES, Edge, Node, Workflow, find_cycles, reachable

_KNOWN_TYPES = ", ".join(sorted(NODE_TYPES))
# Config fields whose strings may hold `${ expr }`, per node type.
_TEMPLATE_FIELDS = {
    "action": ("url", "headers", "query", "body"),
    "transform": ("mapping",),
    "webhook_response": ("headers", "body"),
    "end": ("output",),
}
# Config fields that are whole jq programs, per node type.
_JQ_FIELDS = {"condition": ("expression",), "transform": ("expression",)}


def validate(workflow: Workflow) -> list[Problem]:
    """Every problem in ``workflow``; an empty list means it can be compiled and run."""
    graph = _Located(workflow)
    problems: list[Problem] = []
    for check in (
        _ids_and_types,
        _start_and_ends,
        _edges,
        _cycles,
        _reachability,
        _expressions,
    ):
        problems.extend(check(graph))
    return problems


class _Located:
    """The workflow plus where each node and edge sits in the submitted document."""

    def __init__(self, workflow: Workflow) -> None:
        self.workflow = workflow
        self.nodes = workflow.nodes
        self.edges = workflow.edges
        meta = workflow.meta or {}
        self.node_pointers: tuple[str, ...] = tuple(
            meta.get("node_pointers") or (f"/nodes/{i}" for i in range(len(self.nodes)))
        )
        self.edge_pointers: tuple[str, ...] = tuple(
            meta.get("edge_pointers") or (f"/edges/{i}" for i in range(len(self.edges)))
        )
        # With duplicate ids, the first declaration speaks for the id.
        self.first: dict[str, int] = {}
        for index, node in enumerate(self.nodes):
            self.first.setdefault(node.id, index)
        self.edge_index: dict[tuple[str, str], int] = {}
        for index, edge in enumerate(self.edges):
            self.edge_index.setdefault((edge.source, edge.target), index)

    def type_of(self, node_id: str) -> str | None:
        index = self.first.get(node_id)
        return None if index is None else self.nodes[index].type

    def first_declared(self) -> list[tuple[int, Node]]:
        """(index, node) for each id's first declaration: later duplicates are reported once."""
        return [(i, node) for i, node in enumerate(self.nodes) if self.first[node.id] == i]

    def at_node(self, index: int, message: str, suffix: str = "") -> Problem:
        node = self.nodes[index]
        return Problem(self.node_pointers[index] + suffix, message, node.id)

    def at_edge(self, index: int, message: str, suffix: str = "") -> Problem:
        edge = self.edges[index]
        return Problem(self.edge_pointers[index] + suffix, f"edge {edge.key()}: {message}")


def _ids_and_types(graph: _Located) -> Iterator[Problem]:
    for index, node in enumerate(graph.nodes):
        first = graph.first[node.id]
        if first != index:
            yield graph.at_node(
                index, f"duplicate node id '{node.id}': also used by {graph.node_pointers[first]}"
            )
        if node.type not in NODE_TYPES:
            yield graph.at_node(
                index,
                f"node '{node.id}' has unknown type '{node.type}' (known: {_KNOWN_TYPES})",
                "/type",
            )


def _start_and_ends(graph: _Located) -> Iterator[Problem]:
    starts = [i for i, node in enumerate(graph.nodes) if node.type == "start"]
    if not starts:
        yield Problem("/nodes", "no start node: a workflow needs exactly one")
    elif len(starts) > 1:
        names = ", ".join(f"'{graph.nodes[i].id}'" for i in starts)
        for index in starts:
            message = f"{len(starts)} start nodes ({names}): a workflow needs exactly one"
            yield graph.at_node(index, message)
    if not any(node.type == "end" for node in graph.nodes):
        yield Problem("/nodes", "no end node: a workflow needs at least one")


def _edges(graph: _Located) -> Iterator[Problem]:
    for index, edge in enumerate(graph.edges):
        source_type = graph.type_of(edge.source)
        target_type = graph.type_of(edge.target)
        if source_type is None:
            yield graph.at_edge(index, f"source node '{edge.source}' does not exist")
        if target_type is None:
            yield graph.at_edge(index, f"target node '{edge.target}' does not exist")
        first = graph.edge_index[(edge.source, edge.target)]
        if first != index:
            yield graph.at_edge(index, f"duplicate edge: also at {graph.edge_pointers[first]}")
        if edge.source == edge.target:
            yield graph.at_edge(index, f"node '{edge.source}' leads to itself")
        if target_type == "start":
            yield graph.at_edge(index, f"enters the start node '{edge.target}'")
        if source_type == "end":
            yield graph.at_edge(index, f"leaves the end node '{edge.source}'")
        yield from _when(graph, index, edge, source_type)
    for index, node in graph.first_declared():
        if node.type == "condition" and not graph.workflow.out_edges.get(node.id):
            yield graph.at_node(index, f"condition '{node.id}' has no outgoing edges")


def _when(graph: _Located, index: int, edge: Edge, source_type: str | None) -> Iterator[Problem]:
    if edge.when is None:
        return
    if edge.when not in ("true", "false"):
        yield graph.at_edge(index, f'when must be "true" or "false", not {edge.when!r}', "/when")
    if source_type is not None and source_type != "condition":
        yield graph.at_edge(
            index,
            f"'when' is only allowed out of a condition; '{edge.source}' is of type {source_type}",
            "/when",
        )


def _cycles(graph: _Located) -> Iterator[Problem]:
    for component in find_cycles(graph.workflow):
        if len(component) == 1:
            continue  # a self-loop, reported with its edge
        # Start at the node declared first: the edge back to it is usually the mistake.
        head = min(component, key=graph.first.__getitem__)
        path = _cycle_through(graph.workflow, head, set(component))
        message = "cycle: " + " -> ".join([*path, head])
        others = sorted(set(component) - set(path), key=graph.first.__getitem__)
        if others:
            message += f" (also on cycles with it: {', '.join(others)})"
        closing = graph.edge_index[(path[-1], head)]
        yield Problem(graph.edge_pointers[closing], message, head)


def _cycle_through(workflow: Workflow, head: str, component: set[str]) -> list[str]:
    """The shortest cycle from ``head`` back to itself inside one strongly connected component."""
    parent: dict[str, str] = {}
    queue = deque([head])
    while queue:
        node_id = queue.popleft()
        for edge in workflow.out_edges.get(node_id, []):
            if edge.target == head:
                path = [node_id]
                while path[-1] != head:
                    path.append(parent[path[-1]])
                return path[::-1]
            if edge.target in component and edge.target not in parent:
                parent[edge.target] = node_id
                queue.append(edge.target)
    raise AssertionError("a strongly connected component always has a cycle")


def _reachability(graph: _Located) -> Iterator[Problem]:
    workflow = graph.workflow
    firsts = graph.first_declared()
    starts = [node.id for node in graph.nodes if node.type == "start"]
    if starts:
        reached = reachable(starts, workflow.out_edges)
        for index, node in firsts:
            if node.id not in reached:
                yield graph.at_node(index, f"node '{node.id}' is not reachable from the start node")
    ends = [node.id for node in graph.nodes if node.type == "end"]
    if ends:
        finishing = reachable(ends, workflow.in_edges, forward=False)
        for index, node in firsts:
            dead_condition = node.type == "condition" and not workflow.out_edges.get(node.id)
            if node.id not in finishing and not dead_condition:  # that one is reported already
                yield graph.at_node(index, f"node '{node.id}' cannot reach an end node")


def _expressions(graph: _Located) -> Iterator[Problem]:
    from .expressions import check_syntax

    for index, node in enumerate(graph.nodes):
        config = node.config or {}
        for field in _JQ_FIELDS.get(node.type, ()):
            source = config.get(field)
            if isinstance(source, str):
                error = check_syntax(source)
                if error is not None:
                    yield graph.at_node(
                        index, f"node '{node.id}': in {field}: {error}", f"/config/{field}"
                    )
        for field in _TEMPLATE_FIELDS.get(node.type, ()):
            if field in config:
                yield from _template(graph, index, field, config[field])
        if node.type == "delay" and isinstance(config.get("until"), str):
            until = config["until"]
            if "${" in until:
                yield from _template(graph, index, "until", until)
            elif not _is_iso_time(until):
                yield graph.at_node(
                    index,
                    f"node '{node.id}': until must be an ISO 8601 time or a ${{ expression }}, "
                    f"not {until!r}",
                    "/config/until",
                )


def _template(graph: _Located, index: int, field: str, value: Any) -> Iterator[Problem]:
    from .expressions import template_syntax_errors

    node = graph.nodes[index]
    for pointer, message in template_syntax_errors(value, f"/config/{field}"):
        yield graph.at_node(index, f"node '{node.id}': in {field}: {message}", pointer)


def _is_iso_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True
