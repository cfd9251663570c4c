"""Canvasflow against raw Celery on the same RabbitMQ, Redis and worker.

    python bench/bench_engine.py [--concurrency 2] [--skip-embedded] [--skip-unbatched]

Shapes (each first run once untimed, then timed --repeat times, raw and Canvasflow runs
interleaved; the median is printed):
  chain      a 200-step chain: raw chain of no-op tasks vs a 200-node DAG (every step persisted)
  fork       a 1,000-branch fork/join: raw chord(group(1000), noop) vs fork -> 1,000 nodes -> join
  concurrent 500 concurrent 5-step workflows: raw 500 chains vs 500 executions (executions/s),
             started by 8 client threads on both sides
  compile    compile a 10,000-node DAG (chain, and a 9,996-branch fork/join), and parse +
             validate + compile it, best of 5
  embedded   the 200-step chain on the embedded default (SQLite + in-memory broker), ms/step
  actions    a 100-step chain of GETs against a local HTTP server: raw tasks doing the GET
             (pooled session, JSON decoded) vs `action` nodes (same GET, plus the SSRF
             guard, retries policy, circuit breaker and the step row's input/output)
  unbatched  the 200-step chain with CANVASFLOW_BATCH_NODES=1: a task per node, the cost of
             one hop (what an action node pays), next to a raw chain timed in the same window

By default pure nodes share tasks (engine/batching.py): every node is still its own
persisted step, but a run of them needs one message, not one each.

Prints a table and the ratios (Canvasflow / raw). A benchmark prints; it does not assert.
Needs PostgreSQL, RabbitMQ and Redis on 127.0.0.1 (the machine's defaults).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

PG = os.environ.get(
    "CANVASFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
AMQP = os.environ.get("CANVASFLOW_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")
# The concurrent shape starts its workflows from this many client threads, on both sides.
CLIENTS = 8
REDIS = os.environ.get("CANVASFLOW_TEST_REDIS_URL", "redis://127.0.0.1:6379/3")


def chain_dag(n: int) -> dict[str, Any]:
    ids = ["s"] + [f"t{i}" for i in range(n - 2)] + ["e"]
    nodes = (
        [{"id": "s", "type": "start"}]
        + [
            {"id": f"t{i}", "type": "transform", "config": {"expression": ".node.input"}}
            for i in range(n - 2)
        ]
        + [{"id": "e", "type": "end"}]
    )
    return {
        "nodes": nodes,
        "edges": [{"source": a, "target": b} for a, b in zip(ids, ids[1:], strict=False)],
    }


def action_chain_dag(n: int, url: str) -> dict[str, Any]:
    """start -> n GET actions -> end: every action is a hop of its own."""
    ids = ["s"] + [f"a{i}" for i in range(n)] + ["e"]
    nodes = (
        [{"id": "s", "type": "start"}]
        + [
            {"id": f"a{i}", "type": "action", "config": {"method": "GET", "url": url}}
            for i in range(n)
        ]
        + [{"id": "e", "type": "end"}]
    )
    return {
        "nodes": nodes,
        "edges": [{"source": a, "target": b} for a, b in zip(ids, ids[1:], strict=False)],
    }


def fork_dag(width: int) -> dict[str, Any]:
    nodes = [{"id": "s", "type": "start"}, {"id": "f", "type": "fork"}]
    nodes += [
        {"id": f"b{i}", "type": "transform", "config": {"expression": ".node.input"}}
        for i in range(width)
    ]
    nodes += [{"id": "j", "type": "join"}, {"id": "e", "type": "end"}]
    edges = [{"source": "s", "target": "f"}] + [
        {"source": "f", "target": f"b{i}"} for i in range(width)
    ]
    edges += [{"source": f"b{i}", "target": "j"} for i in range(width)] + [
        {"source": "j", "target": "e"}
    ]
    return {"nodes": nodes, "edges": edges}


class Canvasflow:
    def __init__(self, harness: Any) -> None:
        self.h = harness
        self.workflows: dict[str, str] = {}

    def workflow(self, definition: dict[str, Any], timeout: float) -> str:
        """The workflow of ``definition``, run once untimed first (warm caches, as raw's)."""
        key = json.dumps(definition, sort_keys=True)
        if key not in self.workflows:
            wid = self.h.workflow(definition)
            self.h.wait(self.h.start(wid, {"v": 0}), timeout=timeout)
            self.workflows[key] = wid
        return self.workflows[key]

    def run(self, definition: dict[str, Any], timeout: float = 600) -> float:
        """Seconds for one run."""
        wid = self.workflow(definition, timeout)
        t0 = time.perf_counter()
        eid = self.h.start(wid, {"v": 1})
        r = self.h.wait(eid, timeout=timeout)
        assert r.status == "succeeded", r.error
        return time.perf_counter() - t0

    def concurrent(self, definition: dict[str, Any], count: int, timeout: float = 600) -> float:
        from models import Execution, session_scope

        wid = self.workflow(definition, timeout)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            ids = list(pool.map(lambda i: self.h.start(wid, {"i": i}), range(count)))
        url = self.h.settings.effective_database_url
        while True:
            with session_scope(url) as s:
                done = s.execute(
                    select(func.count())
                    .select_from(Execution)
                    .where(Execution.id.in_(ids), Execution.status == "succeeded")
                ).scalar_one()
            if done == count:
                return time.perf_counter() - t0
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(f"{done}/{count} done")
            time.sleep(0.05)  # a light poll: this process shares the cores


class Raw:
    def __init__(self, app: Any) -> None:
        self.app = app

    def sig(self) -> Any:
        from celery import signature

        return signature("bench.noop", immutable=True, app=self.app)

    def chain(self, n: int) -> float:
        from celery import chain

        t0 = time.perf_counter()
        chain(*[self.sig() for _ in range(n)], app=self.app).apply_async().get(timeout=600)
        return time.perf_counter() - t0

    def http_chain(self, n: int, url: str) -> float:
        from celery import chain, signature

        t0 = time.perf_counter()
        steps = [signature("bench.http_get", args=(url,), immutable=True) for _ in range(n)]
        chain(*steps, app=self.app).apply_async().get(timeout=600)
        return time.perf_counter() - t0

    def fork(self, width: int) -> float:
        from celery import chain, chord

        t0 = time.perf_counter()
        # start -> fork -> group -> join -> end, as the DAG
        chain(
            self.sig(),
            self.sig(),
            chord([self.sig() for _ in range(width)], self.sig()),
            self.sig(),
            app=self.app,
        ).apply_async().get(timeout=600)
        return time.perf_counter() - t0

    def concurrent(self, steps: int, count: int) -> float:
        from celery import chain

        t0 = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            results = list(
                pool.map(
                    lambda _: chain(
                        *[self.sig() for _ in range(steps)], app=self.app
                    ).apply_async(),
                    range(count),
                )
            )
        for r in results:
            r.get(timeout=600)
        return time.perf_counter() - t0


def medians(repeat: int, raw: Any, ours: Any) -> tuple[float, float]:
    """Median seconds of each side, runs interleaved so both see the same machine."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(repeat):
        a.append(raw())
        b.append(ours())
    return statistics.median(a), statistics.median(b)


def bench_compile() -> dict[str, float]:
    """Best of 5 (seconds): compile alone, and parse + validate + compile, per shape."""
    from engine.compiler import compile_plan
    from engine.formats.dag import load_dag

    out = {}
    for name, doc in (("chain", chain_dag(10_000)), ("fork", fork_dag(10_000 - 4))):
        both, alone = float("inf"), float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            wf = load_dag(doc)
            t1 = time.perf_counter()
            compile_plan(wf)
            t2 = time.perf_counter()
            both, alone = min(both, t2 - t0), min(alone, t2 - t1)
        out[name], out[f"{name}_compile"] = both, alone
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--concurrency", type=int, default=2, help="worker processes (prefork)")
    ap.add_argument("--chain", type=int, default=200)
    ap.add_argument("--fork", type=int, default=1000)
    ap.add_argument("--workflows", type=int, default=500)
    ap.add_argument("--actions", type=int, default=100, help="length of the action chain")
    ap.add_argument("--repeat", type=int, default=3, help="runs per shape (median)")
    ap.add_argument("--skip-embedded", action="store_true")
    ap.add_argument(
        "--skip-unbatched", action="store_true", help="skip the one-task-per-node chain"
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()

    from tests.support.harness import drop_pg_database, embedded_harness, rabbitmq_harness

    figures: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
    }
    comp = bench_compile()
    figures["compile_10k_chain_s"] = comp["chain"]
    figures["compile_10k_fork_s"] = comp["fork"]
    figures["compile_only_10k_chain_s"] = comp["chain_compile"]
    figures["compile_only_10k_fork_s"] = comp["fork_compile"]

    def harness(**overrides: Any) -> Any:
        return rabbitmq_harness(
            Path(tempfile.mkdtemp(prefix="cf-bench-")),
            PG,
            AMQP,
            REDIS,
            concurrency=args.concurrency,
            worker_extra=["--include", "bench.raw_tasks"],
            max_queue_depth=0,
            lost_message_seconds=120,
            **overrides,
        )

    from tests.support.upstream import start_upstream

    upstream = start_upstream()
    h = harness()
    try:
        cf, raw = Canvasflow(h), Raw(h.app)
        cf.run(chain_dag(5), timeout=60)
        raw.chain(5)
        n = args.repeat
        r, c = medians(n, lambda: raw.chain(args.chain), lambda: cf.run(chain_dag(args.chain)))
        figures["raw_chain_ms_per_step"] = r / args.chain * 1000
        figures["cf_chain_ms_per_step"] = c / args.chain * 1000
        figures["raw_fork_s"], figures["cf_fork_s"] = medians(
            n, lambda: raw.fork(args.fork), lambda: cf.run(fork_dag(args.fork))
        )
        r, c = medians(
            n,
            lambda: raw.concurrent(5, args.workflows),
            lambda: cf.concurrent(chain_dag(5), args.workflows),
        )
        figures["raw_concurrent_per_s"] = args.workflows / r
        figures["cf_concurrent_per_s"] = args.workflows / c
        # Nodes that do I/O take a hop each: a chain of GETs against a local HTTP server.
        url = f"{upstream.url}/users/7"
        raw.http_chain(5, url)
        r, c = medians(
            n,
            lambda: raw.http_chain(args.actions, url),
            lambda: cf.run(action_chain_dag(args.actions, url)),
        )
        figures["raw_http_chain_ms_per_step"] = r / args.actions * 1000
        figures["cf_action_chain_ms_per_step"] = c / args.actions * 1000
    finally:
        h.stop()
        drop_pg_database(PG, h.settings.database_url)
        upstream.server.shutdown()

    if not args.skip_unbatched:
        # The cost of a hop itself: every node its own task, as action nodes always are.
        h = harness(batch_nodes=1)
        try:
            cf, raw = Canvasflow(h), Raw(h.app)
            raw.chain(5)
            r, c = medians(
                args.repeat, lambda: raw.chain(args.chain), lambda: cf.run(chain_dag(args.chain))
            )
            figures["raw_chain_ms_per_step_2"] = r / args.chain * 1000
            figures["cf_unbatched_chain_ms_per_step"] = c / args.chain * 1000
        finally:
            h.stop()
            drop_pg_database(PG, h.settings.database_url)

    if not args.skip_embedded:
        eh = embedded_harness(
            Path(tempfile.mkdtemp(prefix="cf-bench-emb-")), lost_message_seconds=120
        )
        try:
            ecf = Canvasflow(eh)
            ecf.run(chain_dag(5), timeout=60)
            runs = [ecf.run(chain_dag(args.chain)) for _ in range(args.repeat)]
            figures["embedded_chain_ms_per_step"] = statistics.median(runs) / args.chain * 1000
        finally:
            eh.stop()

    f = figures
    rows = [
        (
            f"{args.chain}-step chain, ms/step",
            f["raw_chain_ms_per_step"],
            f["cf_chain_ms_per_step"],
            f["cf_chain_ms_per_step"] / f["raw_chain_ms_per_step"],
            "<= 1.2x",
        ),
        (
            f"{args.fork}-branch fork/join, s",
            f["raw_fork_s"],
            f["cf_fork_s"],
            f["cf_fork_s"] / f["raw_fork_s"],
            "<= 1.0x",
        ),
        (
            f"{args.workflows} concurrent 5-step, exec/s",
            f["raw_concurrent_per_s"],
            f["cf_concurrent_per_s"],
            f["raw_concurrent_per_s"] / f["cf_concurrent_per_s"],
            "<= 1.0x (time ratio)",
        ),
    ]
    rows.append(
        (
            f"{args.actions}-step action chain (HTTP GET), ms/step",
            f["raw_http_chain_ms_per_step"],
            f["cf_action_chain_ms_per_step"],
            f["cf_action_chain_ms_per_step"] / f["raw_http_chain_ms_per_step"],
            "(a hop with I/O; no target)",
        )
    )
    if "cf_unbatched_chain_ms_per_step" in f:
        rows.append(
            (
                f"{args.chain}-step chain, BATCH_NODES=1",
                f["raw_chain_ms_per_step_2"],
                f["cf_unbatched_chain_ms_per_step"],
                f["cf_unbatched_chain_ms_per_step"] / f["raw_chain_ms_per_step_2"],
                "(hop cost; no target)",
            )
        )
    print(
        f"\nCanvasflow vs raw Celery — {f['date']} — {f['machine']}, worker prefork x{args.concurrency}, "
        "RabbitMQ + Redis + PostgreSQL\n"
    )
    print(f"{'shape':40} {'raw Celery':>12} {'Canvasflow':>12} {'ratio':>8}  target")
    for name, r, c, ratio, target in rows:
        print(f"{name:40} {r:12.2f} {c:12.2f} {ratio:7.2f}x  {target}")
    for label, key, target in (
        ("10,000-node chain compile, s", "compile_only_10k_chain_s", "< 0.5 s"),
        ("10,000-node fork compile, s", "compile_only_10k_fork_s", "< 0.5 s"),
        ("10,000-node chain validate+compile, s", "compile_10k_chain_s", ""),
        ("10,000-node fork validate+compile, s", "compile_10k_fork_s", ""),
    ):
        print(f"{label:40} {'':12} {f[key]:12.3f} {'':8}  {target}")
    if "embedded_chain_ms_per_step" in f:
        print(
            f"{'embedded default chain, ms/step':40} {'':12} {f['embedded_chain_ms_per_step']:12.2f} {'':8}  < 15 ms"
        )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
