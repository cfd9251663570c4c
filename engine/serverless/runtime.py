"""The Serverless Workflow interpreter: one task definition, its data flow and its flow control.

Pure Python: every side effect (HTTP, step records, clocks, events, sub-workflows,
processes) goes through the ``Host`` given to the ``Runner``, so the semantics are tested
with a fake host and run for real by ``tasks/handlers/serverless/``.

A task runs as the spec's data flow says: ``if`` on the raw input, input schema,
``input.from``, the task itself, ``output.as``, output schema, ``export.as`` (the new
``$context``), export schema. Lists follow flow directives (``continue``, ``exit``,
``end``, a task name); ``end`` climbs to the top as ``Outcome.end``.

This module holds that data flow, the flow directives, deadlines and cancellation. The
task kinds themselves are in ``control`` (set, do, switch, for, fork, try, raise, wait) and
``effects`` (call, emit, listen, run); ``Host``, ``Scope``, ``Outcome``, ``task_kind`` and
``task_entries`` are defined in ``host``, ``scope`` and ``tasklists`` and re-exported here.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from . import control, effects
from .dataflow import expression, truthy, validate_schema
from .durations import to_seconds
from .effects import UNSUPPORTED_CALLS as UNSUPPORTED_CALLS
from .errors import Cancelled, WorkflowError
from .host import Host as Host
from .scope import SLEEP_SLICE as SLEEP_SLICE
from .scope import Outcome as Outcome
from .scope import Scope as Scope
from .tasklists import KINDS as KINDS
from .tasklists import escape as escape
from .tasklists import task_entries as task_entries
from .tasklists import task_kind as task_kind

__all__ = ["Host", "Outcome", "Runner", "Scope", "datetime_descriptor", "task_entries", "task_kind"]

DEFAULT_HTTP_TIMEOUT = 60.0

# Each task kind's own behaviour, by the name task_kind() gives it.
_BODIES: dict[str, Callable[..., tuple[Any, str | None]]] = {**control.BODIES, **effects.BODIES}


def datetime_descriptor(moment: datetime) -> dict[str, Any]:
    """The spec's dateTimeDescriptor: iso8601 and epoch seconds/milliseconds."""
    millis = int(moment.timestamp() * 1000)
    return {
        "iso8601": moment.isoformat().replace("+00:00", "Z"),
        "epoch": {"seconds": millis // 1000, "milliseconds": millis},
    }


# What follows a task's pointer in the pointer of a task nested in it.
_NESTED_TASK = re.compile(
    r"^/(?:do|try|catch/do|fork/branches|foreach/do|listen/foreach/do)/\d+/[^/]+(?:/|$)"
)


def _relocate(error: WorkflowError, pointer: str) -> None:
    """Errors of a task's own fields (``/set``, ``/output/as``) point at the task itself."""
    instance = error.instance
    if not instance:
        error.instance = pointer
    elif instance.startswith(pointer + "/") and not _NESTED_TASK.match(instance[len(pointer) :]):
        error.instance = pointer
        error.detail = f"{error.detail} (at {instance})" if error.detail else f"at {instance}"


class Runner:
    """Runs task lists and tasks of one workflow document for one execution."""

    def __init__(
        self,
        document: Mapping[str, Any],
        host: Host,
        *,
        execution_id: str = "",
        workflow_input: Any = None,
        started_at: datetime | None = None,
        context: Any = None,
        own_pointer: str | None = None,
        runtime_version: str = "",
        max_branch_threads: int = 32,
        max_wait_seconds: float | None = None,
    ) -> None:
        self.document = document
        self.host = host
        self.use: Mapping[str, Any] = document.get("use") or {}
        self.secrets = host.secrets
        self.context = {} if context is None else context
        self.own_pointer = own_pointer  # the engine records this task's step itself
        self.max_branch_threads = max_branch_threads
        self.max_wait_seconds = max_wait_seconds
        started = started_at or host.now()
        self.workflow_descriptor = {
            "id": execution_id,
            "definition": document,
            "input": workflow_input,
            "startedAt": datetime_descriptor(started),
        }
        self.runtime_descriptor = {"name": "Canvasflow", "version": runtime_version, "metadata": {}}
        self._entries: dict[tuple[int, str], list[tuple[str, dict[str, Any], str]]] = {}
        # OpenAPI documents by URI, fetched once per execution (see effects.py); fork
        # branches run in threads, hence the lock.
        self.documents: dict[str, dict[str, Any]] = {}
        self.documents_lock = threading.Lock()

    # ------------------------------------------------------------------ workflow edges

    def workflow_scope(self, started_at: datetime | None = None) -> Scope:
        """The root scope, with the workflow ``timeout`` as its deadline."""
        after = self._timeout_seconds(self.document.get("timeout"), "/timeout")
        if after is None:
            return Scope()
        start = (started_at or self.host.now()).timestamp()
        return Scope(deadline=start + after, deadline_owner="/")

    def workflow_input(self, raw: Any) -> Any:
        """Validate and transform the workflow input (``input.schema``, ``input.from``)."""
        spec = self.document.get("input") or {}
        validate_schema(spec.get("schema"), raw, "the workflow input", "/input/schema")
        if "from" in spec:
            return expression(
                spec["from"], raw, self.variables(Scope(), context=False), "/input/from"
            )
        return raw

    def workflow_output(self, last: Any) -> Any:
        """Transform and validate the workflow output (``output.as``, ``output.schema``)."""
        spec = self.document.get("output") or {}
        out = last
        if "as" in spec:
            out = expression(spec["as"], last, self.variables(Scope()), "/output/as")
        validate_schema(spec.get("schema"), out, "the workflow output", "/output/schema")
        return out

    # ------------------------------------------------------------------ lists and tasks

    def entries(self, tasks: Any, pointer: str) -> list[tuple[str, dict[str, Any], str]]:
        """``task_entries`` of a list, computed once per list."""
        key = (id(tasks), pointer)
        found = self._entries.get(key)
        if found is None:
            found = self._entries[key] = task_entries(tasks, pointer)
        return found

    def run_list(self, tasks: Any, pointer: str, data: Any, scope: Scope) -> Outcome:
        """Run a task list from its first task, following flow directives."""
        entries = self.entries(tasks, pointer)
        index = {name: i for i, (name, _, _) in enumerate(entries)}
        i = 0
        while 0 <= i < len(entries):
            name, task, task_pointer = entries[i]
            data, then = self.run_task(name, task, task_pointer, data, scope)
            if then in (None, "continue"):
                i += 1
            elif then == "exit":
                break
            elif then == "end":
                return Outcome(data, end=True)
            elif then in index:
                i = index[then]
            else:
                raise WorkflowError.standard(
                    "configuration",
                    f"then {then!r} names no task of this list",
                    instance=f"{task_pointer}/then",
                )
        return Outcome(data)

    def run_task(
        self, name: str, task: dict[str, Any], pointer: str, raw: Any, scope: Scope
    ) -> tuple[Any, str]:
        """Run one task with its data flow; returns (transformed output, flow directive)."""
        self.checkpoint(scope)
        host = self.host
        started = host.now()
        kind = task_kind(task)
        descriptor: dict[str, Any] = {
            "name": name,
            "reference": pointer,
            "definition": task,
            "input": raw,
            "startedAt": datetime_descriptor(started),
        }
        record = pointer != self.own_pointer
        if "if" in task:
            variables = self.variables(scope, descriptor)
            if not truthy(expression(task["if"], raw, variables, f"{pointer}/if")):
                if record:
                    host.record_step(
                        pointer, f"sw:{kind}", "skipped", raw, raw, None, started, host.now()
                    )
                return raw, "continue"
        if record:
            host.record_step(pointer, f"sw:{kind}", "running", raw, None, None, started, None)
        try:
            scope = self._task_deadline(task, pointer, scope, started)
            spec_in = task.get("input") or {}
            validate_schema(spec_in.get("schema"), raw, "the task input", f"{pointer}/input/schema")
            data = raw
            if "from" in spec_in:
                data = expression(
                    spec_in["from"],
                    raw,
                    self.variables(scope, descriptor),
                    f"{pointer}/input/from",
                )
            output, flow = self.body(kind, name, task, pointer, data, scope, descriptor)
            descriptor["output"] = output
            spec_out = task.get("output") or {}
            if "as" in spec_out:
                output = expression(
                    spec_out["as"],
                    output,
                    self.variables(scope, descriptor, input=data),
                    f"{pointer}/output/as",
                )
            validate_schema(
                spec_out.get("schema"), output, "the task output", f"{pointer}/output/schema"
            )
            spec_export = task.get("export") or {}
            if "as" in spec_export:
                context = expression(
                    spec_export["as"],
                    output,
                    self.variables(scope, descriptor, input=data, output=output),
                    f"{pointer}/export/as",
                )
                validate_schema(
                    spec_export.get("schema"),
                    context,
                    "the exported context",
                    f"{pointer}/export/schema",
                )
                self.context = context
        except WorkflowError as exc:
            _relocate(exc, pointer)
            if record:
                host.record_step(
                    pointer, f"sw:{kind}", "failed", raw, None, exc.to_dict(), started, host.now()
                )
            raise
        except Cancelled:
            if record:
                host.record_step(
                    pointer, f"sw:{kind}", "cancelled", raw, None, None, started, host.now()
                )
            raise
        if record:
            host.record_step(
                pointer, f"sw:{kind}", "succeeded", raw, output, None, started, host.now()
            )
        return output, flow or task.get("then") or "continue"

    def checkpoint(self, scope: Scope) -> None:
        """Between tasks: stop on cancellation, fault on an expired deadline."""
        if any(event.is_set() for event in scope.cancels) or self.host.cancelled():
            raise Cancelled()
        if scope.deadline is not None and self.host.now().timestamp() >= scope.deadline:
            owner = (
                "the workflow" if scope.deadline_owner == "/" else f"task {scope.deadline_owner}"
            )
            raise WorkflowError.standard(
                "timeout", f"{owner} timed out", instance=scope.deadline_owner
            )

    def sleep(self, seconds: float, scope: Scope) -> None:
        """Sleep in slices, waking for cancellation and deadlines."""
        end = self.host.now().timestamp() + max(0.0, seconds)
        while True:
            self.checkpoint(scope)
            left = end - self.host.now().timestamp()
            if scope.deadline is not None:
                left = min(left, scope.deadline - self.host.now().timestamp() + 0.001)
            if left <= 0:
                self.checkpoint(scope)
                return
            self.host.sleep(min(SLEEP_SLICE, left))

    # ------------------------------------------------------------------ helpers

    def variables(
        self,
        scope: Scope,
        task: dict[str, Any] | None = None,
        *,
        context: bool = True,
        **values: Any,
    ) -> dict[str, Any]:
        """The ``$`` variables of an expression: workflow, runtime, secrets, context, task, scope."""
        out: dict[str, Any] = {
            "workflow": self.workflow_descriptor,
            "runtime": self.runtime_descriptor,
            "secrets": self.secrets,
        }
        if context:
            out["context"] = self.context
        if task is not None:
            out["task"] = task
        out.update(scope.variables)
        out.update(values)
        return out

    def _timeout_seconds(self, timeout: Any, pointer: str) -> float | None:
        if timeout is None:
            return None
        if isinstance(timeout, str):
            timeout = (self.use.get("timeouts") or {}).get(timeout)
        after = timeout.get("after") if isinstance(timeout, dict) else None
        try:
            return to_seconds(after)
        except ValueError as exc:
            raise WorkflowError.standard(
                "configuration", f"invalid timeout: {exc}", instance=pointer
            ) from exc

    def _task_deadline(
        self, task: dict[str, Any], pointer: str, scope: Scope, started: datetime
    ) -> Scope:
        after = self._timeout_seconds(task.get("timeout"), f"{pointer}/timeout")
        if after is None:
            return scope
        deadline = started.timestamp() + after
        if scope.deadline is not None and scope.deadline <= deadline:
            return scope
        return replace(scope, deadline=deadline, deadline_owner=pointer)

    # ------------------------------------------------------------------ task kinds and I/O

    def body(
        self,
        kind: str,
        name: str,
        task: dict[str, Any],
        pointer: str,
        data: Any,
        scope: Scope,
        descriptor: dict[str, Any],
    ) -> tuple[Any, str | None]:
        """Run the task kind itself (no data flow): (output, flow directive or None)."""
        run = _BODIES.get(kind)
        if run is None:
            raise WorkflowError.standard(
                "configuration", f"task {name!r} has no known task type", instance=pointer
            )
        return run(self, name, task, pointer, data, scope, descriptor)

    def http(self, request: dict[str, Any], scope: Scope, pointer: str) -> dict[str, Any]:
        """Send through the host, bounded by the deadline."""
        self.checkpoint(scope)
        timeout = DEFAULT_HTTP_TIMEOUT
        if scope.deadline is not None:
            timeout = max(0.001, min(timeout, scope.deadline - self.host.now().timestamp()))
        try:
            return self.host.http(request, timeout)
        except WorkflowError as exc:
            raise exc.located(pointer) from None
