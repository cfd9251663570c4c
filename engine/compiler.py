"""Compile a validated workflow into an execution plan of Celery canvases.

The plan splits the graph into *regions*. Each region is one Celery canvas that starts at
an *entry* node: ``chain`` for sequences, ``group`` for fan-out, ``chord`` for a fan-in
whose every predecessor is a branch of the same fan-out. Edges that no canvas can express
(a join fed from several regions, a non series-parallel shape, the way out of a ``delay``)
are *counter edges*: the target's row holds a counter of them, and the task that brings it
to zero publishes the target's region. So every node starts as soon as its own
predecessors are done and never waits for an unrelated branch.

Two rules keep us off Celery's known-bad paths (DESIGN.md): chords are never nested (a
chord header branch is a plain chain), and a ``delay`` always ends its canvas, because a
long wait parks in the database instead of holding a message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .graph import Workflow

RUN_NODE = "canvasflow.run_node"
RUN_NODES = "canvasflow.run_nodes"
# Node types whose handler does no I/O and ends in milliseconds (jq is time-bounded): they
# need no message of their own, so a run of them shares one task (engine/batching.py).
PURE_TYPES = frozenset(
    {"start", "fork", "join", "transform", "condition", "end", "webhook_response"}
)
# Celery re-serializes the rest of a chain into every hop's message (O(n^2) bytes over a
# chain): on a 1,500-step chain half the worker's time went to JSON. Past this many tasks
# a canvas ends and the next one is published through the counter (one UPDATE).
MAX_CANVAS_TASKS = 10


@dataclass(frozen=True)
class Task:
    node_id: str

    def to_json(self) -> dict[str, Any]:
        return {"type": "task", "node": self.node_id}


@dataclass(frozen=True)
class Batch:
    """Pure nodes run one after the other by one task, each still its own persisted step."""

    nodes: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"type": "batch", "nodes": list(self.nodes)}


@dataclass(frozen=True)
class Chain:
    items: tuple[Spec, ...]

    def to_json(self) -> dict[str, Any]:
        return {"type": "chain", "tasks": [i.to_json() for i in self.items]}


@dataclass(frozen=True)
class Group:
    items: tuple[Spec, ...]

    def to_json(self) -> dict[str, Any]:
        return {"type": "group", "tasks": [i.to_json() for i in self.items]}


@dataclass(frozen=True)
class Chord:
    header: tuple[Spec, ...]
    body: Task | Batch

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "chord",
            "header": [i.to_json() for i in self.header],
            "body": self.body.to_json(),
        }


Spec = Task | Batch | Chain | Group | Chord


@dataclass(frozen=True)
class Plan:
    """What a run of one workflow version publishes; cached per version by the worker."""

    regions: dict[str, Spec]
    # (source, target) pairs resolved through the database counter.
    counter_edges: frozenset[tuple[str, str]]
    # Initial value of each node's counter (number of counter edges into it).
    counter_in: dict[str, int]
    # node -> the entry of the region that contains it
    region_of: dict[str, str]
    chords: bool
    # node -> counter targets to decrement when it finishes (precomputed for the hot path)
    counter_out: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # the nodes of a pure type (see PURE_TYPES), which batching may put in one task
    pure: frozenset[str] = frozenset()
    # (entry, batch size) -> the region's canvas as published (engine/batching.py)
    batched: dict[tuple[str, int], Spec] = field(default_factory=dict, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The plan as the API shows it: one canvas per region, plus the database joins."""
        return {
            "chords": self.chords,
            "regions": [
                {
                    "entry": entry,
                    "canvas": spec.to_json(),
                    "nodes": sorted(n for n, r in self.region_of.items() if r == entry),
                }
                for entry, spec in self.regions.items()
            ],
            "database_joins": [
                {
                    "node": node,
                    "counter": count,
                    "sources": sorted(s for s, t in self.counter_edges if t == node),
                }
                for node, count in self.counter_in.items()
                if count
            ],
        }


def _seq(items: list[Spec]) -> Spec:
    return items[0] if len(items) == 1 else Chain(tuple(items))


class _Builder:
    def __init__(self, workflow: Workflow, chords: bool, max_tasks: int = MAX_CANVAS_TASKS) -> None:
        self.wf = workflow
        self.chords = chords
        self.max_tasks = max_tasks
        self.indeg = {n.id: len(workflow.in_edges.get(n.id, [])) for n in workflow.nodes}
        self.canvas_edges: set[tuple[str, str]] = set()
        self.members: dict[str, str] = {}
        self.entry = ""
        self.current: list[str] = []

    def _succ(self, node_id: str) -> list[str]:
        return self.wf.successors(node_id)

    def _member(self, node_id: str) -> Task:
        self.members[node_id] = self.entry
        self.current.append(node_id)
        return Task(node_id)

    def grow(self, first: str, in_branch: bool) -> tuple[list[Spec], str | None]:
        """Sequence from ``first``; returns the items and the tail whose one successor may join."""
        items: list[Spec] = [self._member(first)]
        cur = first
        while True:
            if self.wf.node_map[cur].type == "delay" or len(items) >= self.max_tasks:
                return items, None
            succ = self._succ(cur)
            if not succ:
                return items, None
            if len(succ) == 1:
                nxt = succ[0]
                if self.indeg[nxt] == 1:
                    self.canvas_edges.add((cur, nxt))
                    items.append(self._member(nxt))
                    cur = nxt
                    continue
                return items, cur
            if in_branch:
                return items, None
            fan = [s for s in succ if self.indeg[s] == 1]
            branches: list[tuple[list[Spec], str | None]] = []
            for s in fan:
                self.canvas_edges.add((cur, s))
                branches.append(self.grow(s, in_branch=True))
            join = self._chord_join(cur, fan, branches)
            if join is not None:
                header = tuple(_seq(b) for b, _ in branches)
                for _, tail in branches:
                    assert tail is not None
                    self.canvas_edges.add((tail, join))
                items.append(Chord(header, self._member(join)))
                cur = join
                continue
            if branches:
                items.append(
                    Group(tuple(_seq(b) for b, _ in branches))
                    if len(branches) > 1
                    else _seq(branches[0][0])
                )
            return items, None

    def _chord_join(
        self, fork: str, fan: list[str], branches: list[tuple[list[Spec], str | None]]
    ) -> str | None:
        if not self.chords or len(fan) < 2 or len(fan) != len(self._succ(fork)):
            return None
        tails = [t for _, t in branches]
        if any(t is None for t in tails):
            return None
        joins = {self._succ(t)[0] for t in tails if t is not None}
        if len(joins) != 1:
            return None
        join = joins.pop()
        return join if self.indeg[join] == len(tails) else None


def compile_plan(
    workflow: Workflow, chords: bool = True, max_tasks: int = MAX_CANVAS_TASKS
) -> Plan:
    """Split a validated workflow into canvases and counter edges. Touches no DB and no broker."""
    b = _Builder(workflow, chords, max_tasks)
    regions: dict[str, Spec] = {}
    pending = [workflow.start.id]
    while pending:
        entry = pending.pop()
        if entry in regions:
            continue
        b.entry = entry
        b.current = []
        items, _ = b.grow(entry, in_branch=False)
        regions[entry] = _seq(items)
        # Any edge leaving this region's nodes that no canvas took is a counter edge;
        # its target starts a region of its own.
        for node_id in b.current:
            for target in workflow.successors(node_id):
                if (node_id, target) not in b.canvas_edges and target not in regions:
                    pending.append(target)
    counter_edges = frozenset(
        (e.source, e.target) for e in workflow.edges if (e.source, e.target) not in b.canvas_edges
    )
    counter_in = {n.id: 0 for n in workflow.nodes}
    counter_out: dict[str, list[str]] = {n.id: [] for n in workflow.nodes}
    for s, t in counter_edges:
        counter_in[t] += 1
        counter_out[s].append(t)
    return Plan(
        regions=regions,
        counter_edges=counter_edges,
        counter_in=counter_in,
        region_of=dict(b.members),
        chords=chords,
        counter_out={k: tuple(v) for k, v in counter_out.items()},
        pure=frozenset(n.id for n in workflow.nodes if n.type in PURE_TYPES),
    )


def to_signature(spec: Spec, execution_id: str, app: Any = None, repair: bool = False) -> Any:
    """Build the Celery canvas for one region, by task name (no task module import)."""
    from celery import chain, chord, group, signature

    def build(s: Spec, header: bool = False) -> Any:
        # The database is the record: only a chord header's results are needed (by the
        # chord's join counter), so every other task skips the result backend.
        options = {} if header else {"ignore_result": True}
        if isinstance(s, Task):
            kwargs = {"repair": True} if repair else {}
            return signature(
                RUN_NODE,
                args=(execution_id, s.node_id),
                kwargs=kwargs,
                options=options,
                immutable=True,
                app=app,
            )
        if isinstance(s, Batch):
            return signature(
                RUN_NODES,
                args=(execution_id, list(s.nodes)),
                options=options,
                immutable=True,
                app=app,
            )
        if isinstance(s, Chain):
            return chain(*[build(i, header) for i in s.items], app=app)
        if isinstance(s, Group):
            return group([build(i, header) for i in s.items], app=app)
        return chord([build(i, True) for i in s.header], build(s.body), app=app)

    return build(spec)


def compile(workflow: Workflow, execution_id: str, chords: bool = True) -> Any:  # noqa: A001 - the contract's name
    """The canvas that starts a run: the start node's region, as a Celery signature."""
    plan = compile_plan(workflow, chords)
    return to_signature(plan.regions[workflow.start.id], execution_id)
