"""Time parsing and validating 10,000-node DAG documents; prints best-of-N figures in ms.

    .venv/bin/python bench/bench_validate.py [--nodes 10000] [--repeat 5] [--distinct]

Three shapes: a chain, one fork to every node and one join, and a random layered DAG
with conditions. ``--distinct`` gives every node its own jq expression, so nothing is
served from the compile cache (the worst case; a real workflow repeats few).
A benchmark prints; it asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.formats.dag import load_dag, parse_dag, schema_problems  # noqa: E402
from engine.graph import Workflow  # noqa: E402
from engine.validation import validate  # noqa: E402

Document = dict[str, Any]


def work_node(node_id: str, index: int, distinct: bool) -> dict[str, Any]:
    """An action, transform or delay node, cycling through the three."""
    key = f"k{index}" if distinct else "id"
    kind = index % 3
    if kind == 0:
        config = {
            "method": "POST",
            "url": f"http://api.local/items/${{ .input.{key} }}",
            "headers": {"Accept": "application/json"},
            "body": {"value": f"${{ .node.input.{key} }}"},
        }
        return {"id": node_id, "type": "action", "config": config, "retry": {"max_attempts": 2}}
    if kind == 1:
        return {
            "id": node_id,
            "type": "transform",
            "config": {"expression": f"{{v: .node.input.{key}}}"},
        }
    return {"id": node_id, "type": "delay", "config": {"seconds": 0}}


def chain(n: int, distinct: bool) -> Document:
    """start -> n work nodes -> end."""
    ids = [f"n{i}" for i in range(n)]
    nodes = [
        {"id": "start", "type": "start"},
        *(work_node(x, i, distinct) for i, x in enumerate(ids)),
    ]
    nodes.append({"id": "end", "type": "end"})
    path = ["start", *ids, "end"]
    return {
        "nodes": nodes,
        "edges": [{"source": a, "target": b} for a, b in zip(path, path[1:], strict=False)],
    }


def fork_join(n: int, distinct: bool) -> Document:
    """start -> fork -> n work nodes in parallel -> join -> end."""
    ids = [f"n{i}" for i in range(n)]
    nodes = [
        {"id": "start", "type": "start"},
        {"id": "split", "type": "fork"},
        *(work_node(x, i, distinct) for i, x in enumerate(ids)),
        {"id": "merge", "type": "join"},
        {"id": "end", "type": "end"},
    ]
    edges = [
        ("start", "split"),
        *(("split", x) for x in ids),
        *((x, "merge") for x in ids),
        ("merge", "end"),
    ]
    return {"nodes": nodes, "edges": [{"source": a, "target": b} for a, b in edges]}


def layered(n: int, distinct: bool, width: int = 20, seed: int = 7) -> Document:
    """Random layers of ``width``, each node leading to 1-3 in the next two; 1 in 10 a condition."""
    rng = random.Random(seed)
    layers = [["start"]]
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "start"}]
    for i in range(n):
        if i % width == 0:
            layers.append([])
        node_id = f"n{i}"
        if rng.random() < 0.1:
            nodes.append(
                {
                    "id": node_id,
                    "type": "condition",
                    "config": {"expression": f".input.n > {i if distinct else 3}"},
                }
            )
        else:
            nodes.append(work_node(node_id, i, distinct))
        layers[-1].append(node_id)
    layers.append(["end"])
    nodes.append({"id": "end", "type": "end"})
    types = {node["id"]: node["type"] for node in nodes}
    edges: dict[tuple[str, str], str | None] = {}
    for depth, layer in enumerate(layers[:-1]):
        ahead = [x for following in layers[depth + 1 : depth + 3] for x in following]
        for node_id in layer:
            if types[node_id] == "condition" and len(ahead) >= 2:
                yes, no = rng.sample(ahead, 2)
                edges[(node_id, yes)], edges[(node_id, no)] = "true", "false"
            else:
                for target in rng.sample(ahead, min(len(ahead), rng.randint(1, 3))):
                    edges[(node_id, target)] = None
    entered = {target for _, target in edges}
    for depth, layer in enumerate(layers[1:], start=1):
        plain = [x for x in layers[depth - 1] if types[x] != "condition"] or ["start"]
        for node_id in layer:
            if node_id not in entered:
                edges[(rng.choice(plain), node_id)] = None
    return {
        "nodes": nodes,
        "edges": [
            {"source": s, "target": t, **({"when": w} if w else {})} for (s, t), w in edges.items()
        ],
    }


def best_ms(run: Callable[[], Any], repeat: int) -> float:
    """The fastest of ``repeat`` runs, in milliseconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000, help="work nodes per DAG")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure; the best is kept")
    parser.add_argument(
        "--distinct", action="store_true", help="a different expression in every node"
    )
    args = parser.parse_args(argv)

    shapes = {"chain": chain, "fork-join": fork_join, "layered": layered}
    print(
        f"{args.nodes:,} work nodes, best of {args.repeat}, ms"
        f"{' (distinct expressions)' if args.distinct else ''}"
    )
    columns = ("schema", "parse", "validate", "load_dag")
    print(f"{'shape':<10} {'nodes':>7} {'edges':>7} " + " ".join(f"{c:>9}" for c in columns))
    for name, build in shapes.items():
        document = build(args.nodes, args.distinct)
        workflow = load_dag(document)  # also warms the jq compile cache, as a running server has
        figures = [
            best_ms(lambda: schema_problems(document), args.repeat),  # noqa: B023
            best_ms(lambda: parse_dag(document), args.repeat),  # noqa: B023
            # A fresh Workflow each run, so its cached indexes are rebuilt and timed.
            best_ms(lambda: validate(Workflow(workflow.nodes, workflow.edges)), args.repeat),  # noqa: B023
            best_ms(lambda: load_dag(document), args.repeat),  # noqa: B023
        ]
        print(
            f"{name:<10} {len(document['nodes']):>7,} {len(document['edges']):>7,} "
            + " ".join(f"{figure:>9.1f}" for figure in figures)
        )


if __name__ == "__main__":
    main()
