"""Task kinds that compute and steer: ``set``, ``do``, ``switch``, ``for``, ``fork``, ``try``,
``raise``, ``wait``.

None of them reaches outside the workflow but for the clock. Each is called by
``Runner.body`` (through ``BODIES``) with the task's name, definition, pointer, transformed
input, ``Scope`` and ``$task`` descriptor, and returns (output, flow directive or None);
nested lists run back through ``runner.run_list`` and ``runner.run_task``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .dataflow import expression, template, truthy
from .durations import resolve_duration
from .errors import Cancelled, WorkflowError
from .retry import catches, retry_delay
from .scope import SLEEP_SLICE, Scope
from .tasklists import escape

if TYPE_CHECKING:
    from .runtime import Runner

__all__ = ["BODIES"]


def _set(
    runner: Runner,
    name: str,
    task: dict[str, Any],
    pointer: str,
    data: Any,
    scope: Scope,
    descriptor: dict[str, Any],
) -> tuple[Any, str | None]:
    variables = runner.variables(scope, descriptor, input=data)
    value = task["set"]
    if isinstance(value, str):
        return expression(value, data, variables, f"{pointer}/set"), None
    return template(value, data, variables, f"{pointer}/set"), None


def _do(
    runner: Runner,
    name: str,
    task: dict[str, Any],
    pointer: str,
    data: Any,
    scope: Scope,
    descriptor: dict[str, Any],
) -> tuple[Any, str | None]:
    outcome = runner.run_list(task["do"], f"{pointer}/do", data, scope)
    return outcome.output, "end" if outcome.end else None


def _switch(
    runner: Runner,
    name: str,
    task: dict[str, Any],
    pointer: str,
    data: Any,
    scope: Scope,
    descriptor: dict[str, Any],
) -> tuple[Any, str | None]:
    variables = runner.variables(scope, descriptor, input=data)
    for index, item in enumerate(task["switch"] or []):
        [(case_name, case)] = item.items()
        case = case or {}
        when = case.get("when")
        where = f"{pointer}/switch/{index}/{escape(str(case_name))}/when"
        if when is None or truthy(expression(when, data, variables, where)):
            return data, case.get("then")
    return data, None


def _for(
    runner: Runner,
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
        spec["in"], data, runner.variables(scope, descriptor, input=data), f"{pointer}/for/in"
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
        runner.checkpoint(scope)
        inner = scope.with_variables(**{each: item, at: index})
        if "while" in task:
            keep = expression(
                task["while"],
                data,
                runner.variables(inner, descriptor, input=data),
                f"{pointer}/while",
            )
            if not truthy(keep):
                break
        outcome = runner.run_list(task["do"], f"{pointer}/do", data, inner)
        data = outcome.output
        if outcome.end:
            return data, "end"
    return data, None


def _fork(
    runner: Runner,
    name: str,
    task: dict[str, Any],
    pointer: str,
    data: Any,
    scope: Scope,
    descriptor: dict[str, Any],
) -> tuple[Any, str | None]:
    spec = task["fork"]
    branches = runner.entries(spec.get("branches"), f"{pointer}/fork/branches")
    compete = bool(spec.get("compete"))
    if not branches:
        return ([] if not compete else data), None
    stops = [threading.Event() for _ in branches]

    def branch(i: int) -> Any:
        b_name, b_task, b_pointer = branches[i]
        b_scope = replace(scope, cancels=scope.cancels + (stops[i],))
        return runner.run_task(b_name, b_task, b_pointer, data, b_scope)[0]

    workers = max(1, min(len(branches), runner.max_branch_threads))
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
                elif error is not None and not isinstance(error, Cancelled) and first_error is None:
                    first_error = error
            if (
                winner is not None
                or (first_error is not None and not compete)
                or _cancelled(runner, scope)
            ):
                for i, stop in enumerate(stops):
                    if winner is None or futures[i] is not winner:
                        stop.set()
    if winner is not None:
        return winner.result(), None
    runner.checkpoint(scope)
    if first_error is not None:
        raise first_error
    errors = [f.exception() for f in futures]
    if compete:  # every branch lost: the first error, or a cancellation
        raise next((e for e in errors if e is not None), Cancelled())
    return [f.result() for f in futures], None


def _cancelled(runner: Runner, scope: Scope) -> bool:
    return any(event.is_set() for event in scope.cancels) or runner.host.cancelled()


def _try(
    runner: Runner,
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
        policy = (runner.use.get("retries") or {}).get(policy)
    retries = 0
    first_failure: float | None = None
    while True:
        try:
            outcome = runner.run_list(task["try"], f"{pointer}/try", data, scope)
            return outcome.output, "end" if outcome.end else None
        except WorkflowError as error:
            now = runner.host.now().timestamp()
            first_failure = now if first_failure is None else first_failure
            variables = runner.variables(scope, descriptor, input=data, **{alias: error.to_dict()})
            if not catches(catch, error, data, variables, pointer):
                raise
            delay = (
                retry_delay(policy, retries, now - first_failure, data, variables, pointer)
                if isinstance(policy, dict)
                else None
            )
            if delay is not None:
                retries += 1
                runner.sleep(delay, scope)
                continue
            if catch.get("do"):
                inner = scope.with_variables(**{alias: error.to_dict()})
                outcome = runner.run_list(catch["do"], f"{pointer}/catch/do", data, inner)
                return outcome.output, "end" if outcome.end else None
            return data, None


def _raise(
    runner: Runner,
    name: str,
    task: dict[str, Any],
    pointer: str,
    data: Any,
    scope: Scope,
    descriptor: dict[str, Any],
) -> tuple[Any, str | None]:
    definition = task["raise"].get("error")
    if isinstance(definition, str):
        found = (runner.use.get("errors") or {}).get(definition)
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
        runner.variables(scope, descriptor, input=data),
        f"{pointer}/raise/error",
    )
    raise WorkflowError.from_dict(rendered if isinstance(rendered, dict) else {}, instance=pointer)


def _wait(
    runner: Runner,
    name: str,
    task: dict[str, Any],
    pointer: str,
    data: Any,
    scope: Scope,
    descriptor: dict[str, Any],
) -> tuple[Any, str | None]:
    seconds = resolve_duration(
        task["wait"], data, runner.variables(scope, descriptor, input=data), f"{pointer}/wait"
    )
    if runner.max_wait_seconds is not None and seconds > runner.max_wait_seconds:
        raise WorkflowError.standard(
            "configuration",
            f"wait of {seconds:g}s is longer than this Canvasflow allows "
            f"({runner.max_wait_seconds:g}s): waits sleep in a worker",
            instance=f"{pointer}/wait",
        )
    runner.sleep(seconds, scope)
    return data, None


BODIES: dict[str, Callable[..., tuple[Any, str | None]]] = {
    "set": _set,
    "do": _do,
    "switch": _switch,
    "for": _for,
    "fork": _fork,
    "try": _try,
    "raise": _raise,
    "wait": _wait,
}
