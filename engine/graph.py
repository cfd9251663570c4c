"""The internal workflow graph both definition formats compile to.

Frozen dataclasses, so a parsed workflow can be cached and shared between threads of a
worker; derived indexes (successors, predecessors, ...) are computed once, lazily.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

NODE_TYPES = frozenset(
    {
        "start",
        "end",
        "action",
        "condition",
        "delay",
        "fork",
        "join",
        "transform",
        "webhook_response",
    }
)
# Node types that do work and so accept `retry` and `timeout_seconds`.
WORKING_TYPES = frozenset({"action", "transform", "condition", "webhook_response", "end", "delay"})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff as written in the contract; ``max_attempts`` counts the first try."""

    max_attempts: int = 1
    initial_seconds: float = 1.0
    multiplier: float = 2.0
    max_seconds: float = 60.0
    jitter: bool = False

    def delay_for(self, attempt: int, rand: float = 0.5) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(self.max_seconds, self.initial_seconds * self.multiplier ** max(0, attempt - 1))
        return base * (0.5 + rand) if self.jitter else base

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, default_attempts: int = 1) -> RetryPolicy:
        data = data or {}
        return cls(
            max_attempts=int(data.get("max_attempts", default_attempts)),
            initial_seconds=float(data.get("initial_seconds", 1.0)),
            multiplier=float(data.get("multiplier", 2.0)),
            max_seconds=float(data.get("max_seconds", 60.0)),
            jitter=bool(data.get("jitter", False)),
        )


@dataclass(frozen=True)
class Node:
    id: str
    type: str
    config: Mapping[str, Any] = field(default_factory=dict)
    retry: RetryPolicy | None = None
    timeout_seconds: float | None = None
    label: str | None = None

    def effective_retry(self) -> RetryPolicy:
        """The node's policy, or the type's default (actions retry 3 times)."""
        if self.retry is not None:
            return self.retry
        return RetryPolicy(max_attempts=3) if self.type == "action" else RetryPolicy()


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    when: str | None = None  # "true" / "false" on edges out of a condition

    def key(self) -> str:
        return f"{self.source}->{self.target}"


@dataclass(frozen=True)
class Workflow:
    """A directed graph of nodes; validation guarantees one start and acyclicity."""

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    name: str = ""
    format: str = "dag"
    # Whatever the source format wants to keep (Serverless Workflow document, ...).
    meta: Mapping[str, Any] = field(default_factory=dict)

    @cached_property
    def node_map(self) -> dict[str, Node]:
        return {n.id: n for n in self.nodes}

    @cached_property
    def out_edges(self) -> dict[str, list[Edge]]:
        out: dict[str, list[Edge]] = {n.id: [] for n in self.nodes}
        for e in self.edges:
            out.setdefault(e.source, []).append(e)
        return out

    @cached_property
    def in_edges(self) -> dict[str, list[Edge]]:
        inc: dict[str, list[Edge]] = {n.id: [] for n in self.nodes}
        for e in self.edges:
            inc.setdefault(e.target, []).append(e)
        return inc

    def successors(self, node_id: str) -> list[str]:
        return [e.target for e in self.out_edges.get(node_id, [])]

    def predecessors(self, node_id: str) -> list[str]:
        return [e.source for e in self.in_edges.get(node_id, [])]

    @cached_property
    def start(self) -> Node:
        return next(n for n in self.nodes if n.type == "start")

    @cached_property
    def ends(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if n.type == "end")

    @cached_property
    def topological_order(self) -> tuple[str, ...]:
        """Kahn's order, stable in declaration order; raises ValueError on a cycle."""
        indeg = {n.id: 0 for n in self.nodes}
        for e in self.edges:
            if e.target in indeg and e.source in indeg:
                indeg[e.target] += 1
        ready = deque(n.id for n in self.nodes if indeg[n.id] == 0)
        order: list[str] = []
        while ready:
            nid = ready.popleft()
            order.append(nid)
            for e in self.out_edges.get(nid, []):
                if e.target in indeg:
                    indeg[e.target] -= 1
                    if indeg[e.target] == 0:
                        ready.append(e.target)
        if len(order) != len(self.nodes):
            raise ValueError("the graph has a cycle")
        return tuple(order)


def reachable(
    start: Iterable[str], neighbours: Mapping[str, list[Edge]], forward: bool = True
) -> set[str]:
    """Node ids reachable from ``start`` along edges (forward) or against them."""
    seen: set[str] = set()
    stack = list(start)
    while stack:
        nid = stack.pop()
        if nid in seen:
            continue
        seen.add(nid)
        for e in neighbours.get(nid, []):
            stack.append(e.target if forward else e.source)
    return seen


def find_cycles(workflow: Workflow) -> list[list[str]]:
    """Every strongly connected component that forms a cycle, as node id lists (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = 0
    ids = [n.id for n in workflow.nodes]
    succ = {
        nid: [e.target for e in workflow.out_edges.get(nid, []) if e.target in workflow.node_map]
        for nid in ids
    }

    for root in ids:
        if root in index:
            continue
        # Iterative Tarjan: 10,000-node chains must not hit the recursion limit.
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            nid, i = work.pop()
            if i == 0:
                index[nid] = low[nid] = counter
                counter += 1
                stack.append(nid)
                on_stack.add(nid)
            recurse = False
            children = succ[nid]
            while i < len(children):
                child = children[i]
                i += 1
                if child not in index:
                    work.append((nid, i))
                    work.append((child, 0))
                    recurse = True
                    break
                if child in on_stack:
                    low[nid] = min(low[nid], index[child])
            if recurse:
                continue
            if low[nid] == index[nid]:
                component: list[str] = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == nid:
                        break
                if len(component) > 1 or nid in succ[nid]:
                    cycles.append(list(reversed(component)))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[nid])
    return cycles
