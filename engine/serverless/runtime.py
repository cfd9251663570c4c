"""The Serverless Workflow interpreter: one task definition, its data flow and its flow control.

Pure Python: every side effect (HTTP, step records, clocks, events, sub-workflows,
processes) goes through the ``Host`` given to the ``Runner``, so the semantics are tested
with a fake host and run for real by ``tasks/handlers/serverless.py``.

A task runs as the spec's data flow says: ``if`` on the raw input, input schema,
``input.from``, the task itself, ``output.as``, output schema, ``export.as`` (the new
``$context``), export schema. Lists follow flow directives (``continue``, ``exit``,
``end``, a task name); ``end`` climbs to the top as ``Outcome.end``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from . import calls
from .dataflow import expression, template, truthy, validate_schema
from .durations import resolve_duration, to_seconds
from .errors import Cancelled, WorkflowError
from .events import build_event, consume
from .retry import catches, retry_delay

__all__ = ["Host", "Outcome", "Runner", "Scope", "datetime_descriptor", "task_entries", "task_kind"]

KINDS = (
    "for",
    "try",
    "fork",
    "switch",
    "listen",
    "emit",
    "raise",
    "run",
    "set",
    "wait",
    "call",
    "do",
)
UNSUPPORTED_CALLS = {"grpc": "gRPC", "asyncapi": "AsyncAPI", "mcp": "MCP", "a2a": "A2A"}
DEFAULT_HTTP_TIMEOUT = 60.0
SLEEP_SLICE = 0.5


class Host(Protocol):
    """Every side effect the interpreter needs; see tasks/handlers/serverless.py."""

    secrets: Mapping[str, Any]
    allow_run: bool

    def now(self) -> datetime: ...
    def cancelled(self) -> bool: ...
    def sleep(self, seconds: float) -> None: ...
    def record_step(
        self,
        pointer: str,
        kind: str,
        status: str,
        input: Any,
        output: Any,
        error: dict[str, Any] | None,
        started: datetime,
        finished: datetime | None,
    ) -> None: ...
    def http(self, request: dict[str, Any], timeout: float) -> dict[str, Any]: ...
    def emit(self, event: dict[str, Any]) -> None: ...
    def listen_cursor(self, pointer: str) -> Any: ...
    def events(self, cursor: Any) -> tuple[list[dict[str, Any]], Any]: ...
    def run_workflow(
        self, namespace: str, name: str, version: str, input: Any, wait: bool, pointer: str
    ) -> Any: ...
    def run_process(self, kind: str, spec: dict[str, Any], pointer: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Scope:
    """What a nested task inherits: extra ``$variables``, a deadline, cancel signals."""

    variables: Mapping[str, Any] = field(default_factory=dict)
    deadline: float | None = None  # epoch seconds
    deadline_owner: str = "/"  # pointer of the task (or "/" the workflow) whose timeout it is
    cancels: tuple[threading.Event, ...] = ()

    def with_variables(self, **values: Any) -> Scope:
        return replace(self, variables={**self.variables, **values})


@dataclass(frozen=True)
class Outcome:
    output: Any
    end: bool = False  # a `then: end` (or top-level exit) asked the workflow to finish


def datetime_descriptor(moment: datetime) -> dict[str, Any]:
    """The spec's dateTimeDescriptor: iso8601 and epoch seconds/milliseconds."""
    millis = int(moment.timestamp() * 1000)
    return {
        "iso8601": moment.isoformat().replace("+00:00", "Z"),
        "epoch": {"seconds": millis // 1000, "milliseconds": millis},
    }


def task_kind(task: Any) -> str:
    """``call``, ``set``, ``for``, ... (``for`` and ``try`` carry a ``do``/``catch`` too)."""
    if isinstance(task, dict):
        for kind in KINDS:
            if kind in task:
                return kind
    return "unknown"


def escape(name: str) -> str:
    return name.replace("~", "~0").replace("/", "~1")


def task_entries(tasks: Any, pointer: str) -> list[tuple[str, dict[str, Any], str]]:
    """(name, task, pointer) for every ``- name: task`` item of a task list."""
    out = []
    for index, item in enumerate(tasks if isinstance(tasks, list) else []):
        if isinstance(item, dict) and len(item) == 1:
            [(name, task)] = item.items()
            out.append(
                (
                    str(name),
                    task if isinstance(task, dict) else {},
                    f"{pointer}/{index}/{escape(str(name))}",
                )
            )
    return out


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
        self._documents: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

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
                spec["from"], raw, self._variables(Scope(), context=False), "/input/from"
            )
        return raw

    def workflow_output(self, last: Any) -> Any:
        """Transform and validate the workflow output (``output.as``, ``output.schema``)."""
        spec = self.document.get("output") or {}
        out = last
        if "as" in spec:
            out = expression(spec["as"], last, self._variables(Scope()), "/output/as")
        validate_schema(spec.get("schema"), out, "the workflow output", "/output/schema")
        return out

    # ------------------------------------------------------------------ lists and tasks

    def entries(self, tasks: Any, pointer: str) -> list[tuple[str, dict[str, Any], str]]:
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
            variables = self._variables(scope, descriptor)
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
                    self._variables(scope, descriptor),
                    f"{pointer}/input/from",
                )
            output, flow = self._body(kind, name, task, pointer, data, scope, descriptor)
            descriptor["output"] = output
            spec_out = task.get("output") or {}
            if "as" in spec_out:
                output = expression(
                    spec_out["as"],
                    output,
                    self._variables(scope, descriptor, input=data),
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
                    self._variables(scope, descriptor, input=data, output=output),
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

    def _variables(
        self,
        scope: Scope,
        task: dict[str, Any] | None = None,
        *,
        context: bool = True,
        **values: Any,
    ) -> dict[str, Any]:
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

    # ------------------------------------------------------------------ task kinds

    def _body(
        self,
        kind: str,
        name: str,
        task: dict[str, Any],
        pointer: str,
        data: Any,
        scope: Scope,
        descriptor: dict[str, Any],
    ) -> tuple[Any, str | None]:
        run: Callable[..., tuple[Any, str | None]] | None = getattr(self, f"_task_{kind}", None)
        if run is None:
            raise WorkflowError.standard(
                "configuration", f"task {name!r} has no known task type", instance=pointer
            )
        return run(name, task, pointer, data, scope, descriptor)

    def _task_set(
        self,
        name: str,
        task: dict[str, Any],
        pointer: str,
        data: Any,
        scope: Scope,
        descriptor: dict[str, Any],
    ) -> tuple[Any, str | None]:
        variables = self._variables(scope, descriptor, input=data)
        value = task["set"]
        if isinstance(value, str):
            return expression(value, data, variables, f"{pointer}/set"), None
        return template(value, data, variables, f"{pointer}/set"), None

    def _task_do(
        self,
        name: str,
        task: dict[str, Any],
        pointer: str,
        data: Any,
        scope: Scope,
        descriptor: dict[str, Any],
    ) -> tuple[Any, str | None]:
        outcome = self.run_list(task["do"], f"{pointer}/do", data, scope)
        return outcome.output, "end" if outcome.end else None

    def _task_switch(
        self,
        name: str,
        task: dict[str, Any],
        pointer: str,
        data: Any,
        scope: Scope,
        descriptor: dict[str, Any],
    ) -> tuple[Any, str | None]:
        variables = self._variables(scope, descriptor, input=data)
        for index, item in enumerate(task["switch"] or []):
            [(case_name, case)] = item.items()
            case = case or {}
            when = case.get("when")
            where = f"{pointer}/switch/{index}/{escape(str(case_name))}/when"
            if when is None or truthy(expression(when, data, variables, where)):
                return data, case.get("then")
        return data, None

    def _task_for(
        self,
        name: str,
        task: dict[str, Any],
        pointer: str,
        data: Any,
        scope: Scope,
        descriptor: dict[str, Any],
    ) -> tuple[Any, str | None]:
        spec = task["for"]
        each, at = spec.get("each") or "item", spec.get("at") or "index"
        items = expression(
            spec["in"], data, self._variables(scope, descriptor, input=data), f"{pointer}/for/in"
        )
        if isinstance(items, dict):
            items = list(items.values())
        elif items is None:
            items = []
        elif not isinstance(items, list):
            raise WorkflowError.standard(
                "expression",
                f"for.in gave a {type(items).__name__}, not a collection",
                instance=f"{pointer}/for/in",
            )
        for index, item in enumerate(items):
            self.checkpoint(scope)
            inner = scope.with_variables(**{each: item, at: index})
            if "while" in task:
                keep = expression(
                    task["while"],
                    data,
                    self._variables(inner, descriptor, input=data),
                    f"{pointer}/while",
                )
                if not truthy(keep):
                    break
            outcome = self.run_list(task["do"], f"{pointer}/do", data, inner)
            data = outcome.output
            if outcome.end:
                return data, "end"
        return data, None

    def _task_fork(
        self,
        name: str,
        task: dict[str, Any],
        pointer: str,
        data: Any,
        scope: Scope,
        descriptor: dict[str, Any],
    ) -> tuple[Any, str | None]:
        spec = task["fork"]
        branches = self.entries(spec.get("branches"), f"{pointer}/fork/branches")
        compete = bool(spec.get("compete"))
        if not branches:
            return ([] if not compete else data), None
        stops = [threading.Event() for _ in branches]

        def branch(i: int) -> Any:
            b_name, b_task, b_pointer = branches[i]
            b_scope = replace(scope, cancels=scope.cancels + (stops[i],))
            return self.run_task(b_name, b_task, b_pointer, data, b_scope)[0]

        workers = max(1, min(len(branches), self.max_branch_threads))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sw-fork") as pool:
            futures = [pool.submit(branch, i) for i in range(len(branches))]
            position = {f: i for i, f in enumerate(futures)}
            pending: set[Future[Any]] = set(futures)
            first_error: BaseException | None = None
            winner: Future[Any] | None = None
            while pending:
                done, pending = wait(pending, timeout=SLEEP_SLICE, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=position.__getitem__):
                    error = future.exception()
                    if error is None and compete and winner is None:
                        winner = future
                    elif (
                        error is not None
                        and not isinstance(error, Cancelled)
                        and first_error is None
                    ):
                        first_error = error
                if (
                    winner is not None
                    or (first_error is not None and not compete)
                    or self._cancelled(scope)
                ):
                    for i, stop in enumerate(stops):
                        if winner is None or futures[i] is not winner:
                            stop.set()
        if winner is not None:
            return winner.result(), None
        self.checkpoint(scope)
        if first_error is not None:
            raise first_error
        errors = [f.exception() for f in futures]
        if compete:  # every branch lost: the first error, or a cancellation
            raise next((e for e in errors if e is not None), Cancelled())
        return [f.result() for f in futures], None

    def _cancelled(self, scope: Scope) -> bool:
        return any(event.is_set() for event in scope.cancels) or self.host.cancelled()

    def _task_try(
        self,
        name: str,
        task: dict[str, Any],
        pointer: str,
        data: Any,
        scope: Scope,
        descriptor: dict[str, Any],
    ) -> tuple[Any, str | None]:
        catch = task.get("catch") or {}
        alias = catch.get("as") or "error"
        policy = catch.get("retry")
        if isinstance(policy, str):
            policy = (self.use.get("retries") or {}).get(policy)
        retries = 0
        first_failure: float | None = None
        while True:
            try:
                outcome = self.run_list(task["try"], f"{pointer}/try", data, scope)
                return outcome.output, "end" if outcome.end else None
            except WorkflowError as error:
                now = self.host.now().timestamp()
                first_failure = now if first_failure is None else first_failure
                variables = self._variables(
                    scope, descriptor, input=data, **{alias: error.to_dict()}
                )
                if not catches(catch, error, data, variables, pointer):
                    raise
                delay = (
                    retry_delay(policy, retries, now - first_failure, data, variables, pointer)
                    if isinstance(policy, dict)
                    else None
                )
                if delay is not None:
                    retries += 1
                    self.sleep(delay, scope)
                    continue
                if catch.get("do"):
                    inner = scope.with_variables(**{alias: error.to_dict()})
                    outcome = self.run_list(catch["do"], f"{pointer}/catch/do", data, inner)
                    return outcome.output, "end" if outcome.end else None
                return data, None

    def _task_raise(
        self,
        name: str,
        task: dict[str, Any],
        pointer: str,
        data: Any,
        scope: Scope,
        descriptor: dict[str, Any],
    ) -> tuple[Any, str | None]:
        definition = task["raise"].get("error")
        if isinstance(definition, str):
            found = (self.use.get("errors") or {}).get(definition)
            if found is None:
                raise WorkflowError.standard(
                    "configuration",
                    f"error {definition!r} is not defined in use.errors",
                    instance=f"{pointer}/raise/error",
                )
            definition = found
        rendered = template(
            definition,
            data,
            self._variables(scope, descriptor, input=data),
            f"{pointer}/raise/error",
        )
        raise WorkflowError.from_dict(
            rendered if isinstance(rendered, dict) else {}, instance=pointer
        )

    def _task_wait(
        self,
        name: str,
        task: dict[str, Any],
        pointer: str,
        data: Any,
        scope: Scope,
        descriptor: dict[str, Any],
    ) -> tuple[Any, str | None]:
        seconds = resolve_duration(
            task["wait"], data, self._variables(scope, descriptor, input=data), f"{pointer}/wait"
        )
        if self.max_wait_seconds is not None and seconds > self.max_wait_seconds:
            raise WorkflowError.standard(
                "configuration",
                f"wait of {seconds:g}s is longer than this Canvasflow allows "
                f"({self.max_wait_seconds:g}s): waits sleep in a worker",
                instance=f"{pointer}/wait",
            )
        self.sleep(seconds, scope)
        return data, None

    def _task_emit(
        self,
        name: str,
        task: dict[str, Any],
        pointer: str,
        data: Any,
        scope: Scope,
        descriptor: dict[str, Any],
    ) -> tuple[Any, str | None]:
        attributes = template(
            (task["emit"].get("event") or {}).get("with") or {},
            data,
            self._variables(scope, descriptor, input=data),
            f"{pointer}/emit/event/with",
        )
        event = build_event(attributes, self.host.now(), pointer)
        self.host.emit(event)
        return event, None

    def _task_listen(
        self,
        name: str,
        task: dict[str, Any],
        pointer: str,
        data: Any,
        scope: Scope,
        descriptor: dict[str, Any],
    ) -> tuple[Any, str | None]:
        spec = task["listen"]
        variables = self._variables(scope, descriptor, input=data)
        consumed = consume(self, spec.get("to") or {}, data, variables, pointer, scope)
        read = spec.get("read") or "data"
        events = [event if read == "envelope" else event.get("data") for event in consumed]
        foreach = task.get("foreach") or spec.get("foreach")
        if not isinstance(foreach, dict) or not foreach.get("do"):
            return events, None
        item, at = foreach.get("item") or "item", foreach.get("at") or "index"
        outputs = []
        current = data
        for index, event in enumerate(events):
            inner = scope.with_variables(**{item: event, at: index})
            current = self.run_list(foreach["do"], f"{pointer}/foreach/do", current, inner).output
            if "as" in (foreach.get("output") or {}):
                current = expression(
                    foreach["output"]["as"],
                    current,
                    self._variables(inner, descriptor, input=data),
                    f"{pointer}/foreach/output/as",
                )
            outputs.append(current)
        return outputs, None

    def _task_call(
        self,
        name: str,
        task: dict[str, Any],
        pointer: str,
        data: Any,
        scope: Scope,
        descriptor: dict[str, Any],
    ) -> tuple[Any, str | None]:
        call = task["call"]
        args = task.get("with") or {}
        variables = self._variables(scope, descriptor, input=data)
        if call == "http":
            request = calls.http_request(self, args, data, variables, pointer)
            response = self.http(request, scope, pointer)
            return calls.shape_response(
                request,
                response,
                str(args.get("output") or "content"),
                bool(args.get("redirect")),
                pointer,
            ), None
        if call == "openapi":
            uri, auth = calls.document_uri(args, data, variables, pointer)
            document = self._openapi_document(uri, auth, data, variables, scope, pointer)
            request = calls.openapi_request(self, document, uri, args, data, variables, pointer)
            response = self.http(request, scope, pointer)
            return calls.shape_response(
                request,
                response,
                str(args.get("output") or "content"),
                bool(args.get("redirect")),
                pointer,
            ), None
        if call in UNSUPPORTED_CALLS:
            raise WorkflowError.standard(
                "configuration",
                f"call: {call} is not supported by Canvasflow: it has no "
                f"{UNSUPPORTED_CALLS[call]} client (supported calls: http, openapi, use.functions)",
                instance=pointer,
            )
        function = (self.use.get("functions") or {}).get(call)
        if not isinstance(function, dict):
            raise WorkflowError.standard(
                "configuration",
                f"function {call!r} is not defined in use.functions; "
                "catalog functions are not resolved by Canvasflow",
                instance=pointer,
            )
        arguments = template(args, data, variables, f"{pointer}/with") if args else data
        return self._body(
            task_kind(function), call, function, pointer, arguments, scope, descriptor
        )

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

    def _openapi_document(
        self,
        uri: str,
        auth: Any,
        data: Any,
        variables: Mapping[str, Any],
        scope: Scope,
        pointer: str,
    ) -> dict[str, Any]:
        with self._lock:
            found = self._documents.get(uri)
        if found is None:
            request: dict[str, Any] = {
                "method": "get",
                "uri": uri,
                "headers": {"Accept": "application/json"},
            }
            if auth is not None:
                calls.authorize(
                    self, request, auth, data, variables, f"{pointer}/with/document/endpoint"
                )
            found = calls.parse_document(self.http(request, scope, pointer), uri, pointer)
            with self._lock:
                self._documents[uri] = found
        return found

    def _task_run(
        self,
        name: str,
        task: dict[str, Any],
        pointer: str,
        data: Any,
        scope: Scope,
        descriptor: dict[str, Any],
    ) -> tuple[Any, str | None]:
        run = task["run"]
        variables = self._variables(scope, descriptor, input=data)
        wait_for = run.get("await", True) is not False
        if "workflow" in run:
            ref = template(run["workflow"], data, variables, f"{pointer}/run/workflow")
            child_input = ref.get("input", data)
            output = self.host.run_workflow(
                str(ref.get("namespace") or ""),
                str(ref.get("name")),
                str(ref.get("version") or "latest"),
                child_input,
                wait_for,
                pointer,
            )
            return (output if wait_for else data), None
        kind = next((k for k in ("shell", "script", "container") if k in run), "process")
        if not self.host.allow_run:
            raise WorkflowError.standard(
                "configuration",
                f"run: {kind} is disabled on this Canvasflow: an operator must enable it "
                "(settings.allow_run_tasks, CANVASFLOW_ALLOW_RUN_TASKS=1)",
                instance=pointer,
            )
        spec = template(run[kind], data, variables, f"{pointer}/run/{kind}")
        result = self.host.run_process(kind, spec if isinstance(spec, dict) else {}, pointer)
        if not wait_for:
            return data, None
        returns = run.get("return") or "stdout"
        if returns == "all":
            return result, None
        if returns == "none":
            return None, None
        if result.get("code") not in (0, None) and returns == "stdout":
            raise WorkflowError.standard(
                "runtime",
                f"run: {kind} exited with code {result.get('code')}: "
                f"{str(result.get('stderr') or '')[:500]}",
                instance=pointer,
            )
        return result.get(returns), None
