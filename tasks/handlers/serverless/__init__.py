"""sw_task: run Serverless Workflow tasks with ``engine.serverless`` on a real host.

A node is one top-level task (``/do/3/charge``) or, when the root list jumps around, the
whole list (``/do``). Between nodes travels an envelope ``{output, context, flow}``: the
task output, ``$context`` after ``export.as``, and ``end`` when a nested ``then: end``
finished the workflow early (later nodes then pass the envelope on without running).
The first node applies the workflow's input schema and ``input.from``, the last its
``output.as`` and output schema, so the end node's output is the workflow output.

The host, every side effect the interpreter asks for, is ``DbHost`` (host.py: clock,
cancellation, the node's lease, secrets); it hands each kind of effect to a module of its
own: steps.py (nested tasks as buffered step rows), http_calls.py, events.py (``emit``
and ``listen``), subworkflows.py (``run: workflow``) and processes.py (``run: shell``,
``script``, ``container``).

Known limits: ``wait`` sleeps in the worker thread (the node's lease is renewed while it
does) and waits longer than ``settings.extra["sw_max_wait_seconds"]`` (default one hour)
are refused; ``listen`` polls the events table; ``run: workflow`` polls the child
execution while holding a worker thread.
"""

from __future__ import annotations

from typing import Any

from engine.errors import StepError
from engine.graph import Node
from engine.serverless import Cancelled, Runner, WorkflowError

from ..env import HandlerEnv
from .host import DbHost as DbHost
from .host import RunInfo as RunInfo

__all__ = ["DEFAULT_MAX_WAIT_SECONDS", "DbHost", "RunInfo", "handle"]

DEFAULT_MAX_WAIT_SECONDS = 3600.0


def handle(node: Node, data: Any, context: dict[str, Any], env: HandlerEnv) -> Any:
    """Run the node's task (or the whole root list) and return the envelope for the next node."""
    run = RunInfo.load(env)
    document = run.workflow.meta["document"]
    sw_nodes = [n.id for n in run.workflow.nodes if n.type == "sw_task"]
    first, last = sw_nodes[0] == node.id, sw_nodes[-1] == node.id
    whole = node.id == "/do"
    host = DbHost(env, run)
    runner = Runner(
        document,
        host,
        execution_id=env.execution_id,
        workflow_input=run.input,
        started_at=run.started_at,
        own_pointer=None if whole else node.id,
        max_wait_seconds=float(
            env.settings.extra.get("sw_max_wait_seconds", DEFAULT_MAX_WAIT_SECONDS)
        ),
    )
    try:
        if first:
            raw, flow = runner.workflow_input(data), None
        else:
            envelope = data if isinstance(data, dict) else {}
            raw, flow = envelope.get("output"), envelope.get("flow")
            runner.context = envelope.get("context", {})
        if flow != "end":
            scope = runner.workflow_scope(run.started_at)
            if whole:
                outcome = runner.run_list(document["do"], "/do", raw, scope)
                raw, flow = outcome.output, "end" if outcome.end else None
            else:
                raw, then = runner.run_task(
                    node.config["name"], node.config["task"], node.id, raw, scope
                )
                flow = "end" if then in ("end", "exit") else None
        if last:
            raw = runner.workflow_output(raw)
    except WorkflowError as exc:
        host.flush()
        problem = exc.to_dict()
        raise StepError(
            exc.detail or exc.title or exc.type, error_type=exc.type, details=problem
        ) from None
    except Cancelled:
        host.flush()
        # The execution was cancelled: the step's CAS to succeeded fails and the task stops.
        return {"output": None, "context": runner.context, "flow": "end"}
    finally:
        host.close()
    host.flush()
    return {"output": raw, "context": runner.context, "flow": flow}
