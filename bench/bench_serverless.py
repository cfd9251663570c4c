"""Serverless Workflow versus the equivalent DAG on the same embedded engine.

    .venv/bin/python bench/bench_serverless.py [--iterations 1000] [--branches 100] [--repeat 3]

Two pairs, each run end to end (start_execution to a terminal status) on one embedded
engine (SQLite, in-memory broker, 8 worker threads):

* a ``for`` of 1,000 iterations, each a ``set``  vs  a chain of 1,000 ``transform`` nodes;
* a ``fork`` of 100 ``set`` branches              vs  fork -> 100 transforms -> join.

Prints the best of ``--repeat`` wall-clock times and the ratio SW / DAG (the target is at
most 2). A benchmark prints; it asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.ctk.harness import SwEngine  # noqa: E402

Document = dict[str, Any]
HEADER = {"dsl": "1.0.3", "namespace": "bench", "version": "1.0.0"}


def sw_for(iterations: int) -> tuple[Document, Any]:
    document = {
        "document": {**HEADER, "name": "for-loop"},
        "do": [
            {
                "loop": {
                    "for": {"each": "i", "in": ".items"},
                    "do": [{"add": {"set": {"n": "${ .n + 1 }"}}}],
                }
            }
        ],
    }
    return document, {"items": list(range(iterations)), "n": 0}


def dag_chain(iterations: int) -> tuple[Document, Any]:
    ids = [f"t{i}" for i in range(iterations)]
    nodes = [
        {"id": "start", "type": "start"},
        *(
            {"id": x, "type": "transform", "config": {"expression": "{n: (.node.input.n + 1)}"}}
            for x in ids
        ),
        {"id": "end", "type": "end"},
    ]
    path = ["start", *ids, "end"]
    return {
        "nodes": nodes,
        "edges": [{"source": a, "target": b} for a, b in zip(path, path[1:], strict=False)],
    }, {"n": 0}


def sw_fork(branches: int) -> tuple[Document, Any]:
    document = {
        "document": {**HEADER, "name": "fork"},
        "do": [
            {
                "fan": {
                    "fork": {
                        "branches": [
                            {f"b{i}": {"set": {"branch": i, "n": "${ .n + 1 }"}}}
                            for i in range(branches)
                        ]
                    }
                }
            }
        ],
    }
    return document, {"n": 0}


def dag_fork(branches: int) -> tuple[Document, Any]:
    ids = [f"b{i}" for i in range(branches)]
    nodes = [
        {"id": "start", "type": "start"},
        {"id": "split", "type": "fork"},
        *(
            {
                "id": x,
                "type": "transform",
                "config": {"mapping": {"branch": i, "n": "${ .node.input.n + 1 }"}},
            }
            for i, x in enumerate(ids)
        ),
        {"id": "merge", "type": "join"},
        {"id": "end", "type": "end"},
    ]
    edges = [
        ("start", "split"),
        *(("split", x) for x in ids),
        *((x, "merge") for x in ids),
        ("merge", "end"),
    ]
    return {"nodes": nodes, "edges": [{"source": a, "target": b} for a, b in edges]}, {"n": 0}


def best(
    engine: SwEngine, build: Callable[[int], tuple[Document, Any]], size: int, repeat: int
) -> float:
    """Best wall-clock seconds from start_execution to a terminal status."""
    document, payload = build(size)
    workflow_id = engine.define(document)
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        finished = engine.wait(engine.start(workflow_id, payload), timeout=600)
        times.append(time.perf_counter() - began)
        if finished.status != "succeeded":
            raise SystemExit(
                f"{document.get('document', {}).get('name', 'dag')}: {finished.status} "
                f"{finished.error}"
            )
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--branches", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = SwEngine(Path(tmp) / "data")
        try:
            best(engine, sw_for, 10, 1)  # warm up: compile caches, jq, connections
            best(engine, dag_chain, 10, 1)
            pairs = [
                (
                    f"for x{args.iterations}",
                    sw_for,
                    f"chain x{args.iterations}",
                    dag_chain,
                    args.iterations,
                ),
                (
                    f"fork x{args.branches}",
                    sw_fork,
                    f"fork/join x{args.branches}",
                    dag_fork,
                    args.branches,
                ),
            ]
            print(
                f"{'serverless':<16}{'seconds':>9}   {'dag':<20}{'seconds':>9}"
                f"   {'ratio SW/DAG':>12}"
            )
            for sw_name, sw_build, dag_name, dag_build, size in pairs:
                sw_time = best(engine, sw_build, size, args.repeat)
                dag_time = best(engine, dag_build, size, args.repeat)
                print(
                    f"{sw_name:<16}{sw_time:>9.3f}   {dag_name:<20}{dag_time:>9.3f}   "
                    f"{sw_time / dag_time:>12.2f}"
                )
        finally:
            engine.stop()


if __name__ == "__main__":
    main()
