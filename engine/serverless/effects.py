"""Task kinds that reach outside the workflow through the host: ``call``, ``emit``,
``listen``, ``run``.

Called by ``Runner.body`` (through ``BODIES``) like the kinds of ``control``. HTTP goes
through ``Runner.http`` so the deadline bounds it; requests are built by ``calls`` and
events by ``events``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import calls
from .dataflow import expression, template
from .errors import WorkflowError
from .events import build_event, consume
from .scope import Scope
from .tasklists import task_kind

if TYPE_CHECKING:
    from .runtime import Runner

__all__ = ["BODIES", "UNSUPPORTED_CALLS"]

UNSUPPORTED_CALLS = {"grpc": "gRPC", "asyncapi": "AsyncAPI", "mcp": "MCP", "a2a": "A2A"}


def _emit(
    runner: Runner,
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
        runner.variables(scope, descriptor, input=data),
        f"{pointer}/emit/event/with",
    )
    event = build_event(attributes, runner.host.now(), pointer)
    runner.host.emit(event)
    return event, None


def _listen(
    runner: Runner,
    name: str,
    task: dict[str, Any],
    pointer: str,
    data: Any,
    scope: Scope,
    descriptor: dict[str, Any],
) -> tuple[Any, str | None]:
    spec = task["listen"]
    variables = runner.variables(scope, descriptor, input=data)
    consumed = consume(runner, spec.get("to") or {}, data, variables, pointer, scope)
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
        current = runner.run_list(foreach["do"], f"{pointer}/foreach/do", current, inner).output
        if "as" in (foreach.get("output") or {}):
            current = expression(
                foreach["output"]["as"],
                current,
                runner.variables(inner, descriptor, input=data),
                f"{pointer}/foreach/output/as",
            )
        outputs.append(current)
    return outputs, None


def _call(
    runner: Runner,
    name: str,
    task: dict[str, Any],
    pointer: str,
    data: Any,
    scope: Scope,
    descriptor: dict[str, Any],
) -> tuple[Any, str | None]:
    call = task["call"]
    args = task.get("with") or {}
    variables = runner.variables(scope, descriptor, input=data)
    if call == "http":
        request = calls.http_request(runner, args, data, variables, pointer)
        response = runner.http(request, scope, pointer)
        return calls.shape_response(
            request,
            response,
            str(args.get("output") or "content"),
            bool(args.get("redirect")),
            pointer,
        ), None
    if call == "openapi":
        uri, auth = calls.document_uri(args, data, variables, pointer)
        document = _openapi_document(runner, uri, auth, data, variables, scope, pointer)
        request = calls.openapi_request(runner, document, uri, args, data, variables, pointer)
        response = runner.http(request, scope, pointer)
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
    function = (runner.use.get("functions") or {}).get(call)
    if not isinstance(function, dict):
        raise WorkflowError.standard(
            "configuration",
            f"function {call!r} is not defined in use.functions; "
            "catalog functions are not resolved by Canvasflow",
            instance=pointer,
        )
    arguments = template(args, data, variables, f"{pointer}/with") if args else data
    return runner.body(task_kind(function), call, function, pointer, arguments, scope, descriptor)


def _openapi_document(
    runner: Runner,
    uri: str,
    auth: Any,
    data: Any,
    variables: Mapping[str, Any],
    scope: Scope,
    pointer: str,
) -> dict[str, Any]:
    with runner.documents_lock:
        found = runner.documents.get(uri)
    if found is None:
        request: dict[str, Any] = {
            "method": "get",
            "uri": uri,
            "headers": {"Accept": "application/json"},
        }
        if auth is not None:
            calls.authorize(
                runner, request, auth, data, variables, f"{pointer}/with/document/endpoint"
            )
        found = calls.parse_document(runner.http(request, scope, pointer), uri, pointer)
        with runner.documents_lock:
            runner.documents[uri] = found
    return found


def _run(
    runner: Runner,
    name: str,
    task: dict[str, Any],
    pointer: str,
    data: Any,
    scope: Scope,
    descriptor: dict[str, Any],
) -> tuple[Any, str | None]:
    run = task["run"]
    variables = runner.variables(scope, descriptor, input=data)
    wait_for = run.get("await", True) is not False
    if "workflow" in run:
        ref = template(run["workflow"], data, variables, f"{pointer}/run/workflow")
        child_input = ref.get("input", data)
        output = runner.host.run_workflow(
            str(ref.get("namespace") or ""),
            str(ref.get("name")),
            str(ref.get("version") or "latest"),
            child_input,
            wait_for,
            pointer,
        )
        return (output if wait_for else data), None
    kind = next((k for k in ("shell", "script", "container") if k in run), "process")
    if not runner.host.allow_run:
        raise WorkflowError.standard(
            "configuration",
            f"run: {kind} is disabled on this Canvasflow: an operator must enable it "
            "(settings.allow_run_tasks, CANVASFLOW_ALLOW_RUN_TASKS=1)",
            instance=pointer,
        )
    spec = template(run[kind], data, variables, f"{pointer}/run/{kind}")
    result = runner.host.run_process(kind, spec if isinstance(spec, dict) else {}, pointer)
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


BODIES: dict[str, Callable[..., tuple[Any, str | None]]] = {
    "call": _call,
    "emit": _emit,
    "listen": _listen,
    "run": _run,
}
