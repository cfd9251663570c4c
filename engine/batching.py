"""Batching: how many messages a region's canvas really needs.

A pure node (start, transform, condition, fork, join, end, webhook_response) does no I/O
and ends in milliseconds, so a broker round trip of its own costs more than the node. Its
region's canvas therefore runs consecutive pure nodes in one task (a ``Batch``), and the
pure branches of a fan-out in a few chunks instead of one task each. Every node is still
its own step row, persisted as it ends, by the same compare-and-set; only the messages
between them are gone. Nodes that do I/O (action, delay, serverless tasks) keep a task
each, so a slow call never waits behind another.

Batching never changes regions, canvas edges or counters (engine/compiler.py), only how
a region is cut into tasks: processes with different batch sizes can share a run.
"""

from __future__ import annotations

import math

from .compiler import Batch, Chain, Chord, Group, Plan, Spec, Task

# A batch is a message's worth of work: large enough to amortize the hop, small enough
# that a fan-out's chunks still spread over the workers and a redelivery redoes little.
BATCH_NODES = 25


def _nodes(spec: Spec) -> tuple[str, ...] | None:
    """The nodes of a spec made only of pure work (a Batch), else None."""
    return spec.nodes if isinstance(spec, Batch) else None


def _single(spec: Spec) -> Spec:
    """A batch of one node is published as the plain node task."""
    if isinstance(spec, Batch) and len(spec.nodes) == 1:
        return Task(spec.nodes[0])
    if isinstance(spec, Chain):
        return Chain(tuple(_single(i) for i in spec.items))
    if isinstance(spec, Group):
        return Group(tuple(_single(i) for i in spec.items))
    if isinstance(spec, Chord):
        body = _single(spec.body)
        assert isinstance(body, Task | Batch)
        return Chord(tuple(_single(h) for h in spec.header), body)
    return spec


class _Batcher:
    def __init__(self, pure: frozenset[str], size: int) -> None:
        self.pure = pure
        self.size = size

    def spec(self, spec: Spec) -> Spec:
        if isinstance(spec, Task):
            return Batch((spec.node_id,)) if spec.node_id in self.pure else spec
        if isinstance(spec, Batch):
            return spec
        if isinstance(spec, Chain):
            return _seq(self.sequence(list(spec.items)))
        if isinstance(spec, Group):
            items = self.chunks(spec.items)
            return items[0] if len(items) == 1 else Group(tuple(items))
        header = self.chunks(spec.header)
        if len(header) == 1:
            # One chunk holds every branch: the join simply follows it in a chain.
            return _seq(self.sequence([header[0], spec.body]))
        body = self.spec(spec.body)
        assert isinstance(body, Task | Batch)
        return Chord(tuple(header), body)

    def sequence(self, items: list[Spec]) -> list[Spec]:
        """Merge neighbouring pure work of a chain (a chord's join counts as its last task)."""
        out: list[Spec] = []
        for raw in items:
            item = self.spec(raw)
            for part in item.items if isinstance(item, Chain) else (item,):
                self._push(out, part)
        return out

    def _push(self, out: list[Spec], item: Spec) -> None:
        nodes = _nodes(item)
        last = out[-1] if out else None
        if nodes is not None and last is not None:
            tail = last.body if isinstance(last, Chord) else last
            have = _nodes(tail)
            if have is not None and len(have) + len(nodes) <= self.size:
                merged = Batch(have + nodes)
                out[-1] = Chord(last.header, merged) if isinstance(last, Chord) else merged
                return
        out.append(item)

    def chunks(self, branches: tuple[Spec, ...]) -> list[Spec]:
        """Pure branches of a fan-out go in evenly sized chunks; the others stay one each."""
        items = [self.spec(b) for b in branches]
        pure = [i for i in items if _nodes(i) is not None]
        rest = [i for i in items if _nodes(i) is None]
        total = sum(len(i.nodes) for i in pure if isinstance(i, Batch))
        if not pure:
            return rest
        per = math.ceil(total / math.ceil(total / self.size))
        out: list[Spec] = []
        current: tuple[str, ...] = ()
        for item in pure:
            assert isinstance(item, Batch)
            if current and len(current) + len(item.nodes) > per:
                out.append(Batch(current))
                current = ()
            current += item.nodes
        out.append(Batch(current))
        return out + rest


def _seq(items: list[Spec]) -> Spec:
    return items[0] if len(items) == 1 else Chain(tuple(items))


def batch_spec(spec: Spec, pure: frozenset[str], size: int = BATCH_NODES) -> Spec:
    """The same canvas with pure nodes sharing tasks, at most ``size`` nodes per task."""
    if size <= 1 or not pure:
        return spec
    return _single(_Batcher(pure, size).spec(spec))


def region_canvas(plan: Plan, entry: str, size: int = BATCH_NODES) -> Spec:
    """The canvas a region is published as (memoized on the plan, which never changes)."""
    key = (entry, size)
    hit = plan.batched.get(key)
    if hit is None:
        hit = plan.batched[key] = batch_spec(plan.regions[entry], plan.pure, size)
    return hit
