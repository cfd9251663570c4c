"""The node tasks: thin wrappers that claim a step, run its handler, record the outcome.

No transaction is held during a handler's I/O. A handler's StepError decides between a
retry (countdown, or parked in the database when long) and a permanent failure, which
rejects the message without requeue so RabbitMQ dead-letters it.
"""

from __future__ import annotations

import json
import logging
import math
import random
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from celery import Task
from celery.exceptions import Ignore, Reject
from celery.signals import worker_ready
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from engine import runs
from engine.compiler import RUN_NODE, RUN_NODES
from engine.errors import StepError
from models import session_scope

from . import handlers, runtime
from .celery_app import celery_app
from .handlers import delay as delay_handler
from .publish import WAKE_STEP, publish_followups, publish_wake

log = logging.getLogger(__name__)


class _Lost(Ignore):
    """A step's outcome lost its compare-and-set: cancelled, or recorded by another message."""


HAND_OVER_MAX_BYTES = 16 * 1024
T = TypeVar("T")


def _message(task: Task) -> dict[str, Any]:
    req = task.request
    return {
        "task": task.name,
        "id": req.id,
        "args": list(req.args or []),
        "kwargs": dict(req.kwargs or {}),
        "retries": req.retries,
        "delivery_info": {
            k: v
            for k, v in (req.delivery_info or {}).items()
            if isinstance(v, str | int | bool | None)
        },
    }


@celery_app.task(
    name=RUN_NODE, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None
)
def run_node(
    self: Task,
    execution_id: str,
    node_id: str,
    repair: bool = False,
    takeover: bool = False,
    prev: dict[str, Any] | None = None,
) -> None:
    """Run one node of one execution, exactly once in effect."""
    handed = _run_step(self, execution_id, node_id, repair=repair, prev=prev)
    _hand_over(self, execution_id, handed)


@celery_app.task(
    name=RUN_NODES, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None
)
def run_nodes(
    self: Task,
    execution_id: str,
    node_ids: list[str],
    prev: dict[str, Any] | None = None,
) -> None:
    """Run a batch of pure nodes in order (engine/batching.py), each its own step.

    Each node commits its outcome before the next starts, so a redelivery after a crash
    finds the finished ones already recorded and only runs the rest.
    """
    for node_id in node_ids:
        try:
            prev = _run_step(self, execution_id, node_id, prev=prev)
        except _Lost:
            # The step's outcome lost its compare-and-set. Cancelled: stop here. Else
            # another message (a repair republish) recorded it first: go on with the rest.
            url = runtime.settings().effective_database_url
            if not _tx(url, lambda session: runs.execution_running(session, execution_id)):
                raise
            prev = None
    _hand_over(self, execution_id, prev)


def _run_step(
    task: Task,
    execution_id: str,
    node_id: str,
    *,
    repair: bool = False,
    prev: dict[str, Any] | None = None,
    assume_fresh: bool = True,
) -> dict[str, Any] | None:
    """Claim, run and record one step; returns its output to hand to the next, if any."""
    settings = runtime.settings()
    url = settings.effective_database_url
    chords = settings.native_chords

    def start(session: Any) -> Any:
        if runs.node_type_of(session, execution_id, node_id, chords) in runs.PURE_TYPES:
            # No I/O: read, compute, then one compare-and-set from pending to the outcome.
            prepared = runs.prepare_pure_step(
                session,
                execution_id,
                node_id,
                chords=chords,
                repair=repair,
                task_id=task.request.id,
                worker=task.request.hostname,
                prev=prev,
                assume_fresh=assume_fresh,
            )
            if prepared[0].kind != "claim":
                return prepared
        # A running step is taken over only by the message that owns the row (a
        # redelivery, or a re-queue that stamped its id) or once its lease expired.
        return runs.claim_step(
            session,
            execution_id,
            node_id,
            chords=chords,
            repair=repair,
            takeover=True,
            task_id=task.request.id,
            worker=task.request.hostname,
            lease_seconds=settings.lease_seconds,
            prev=prev if assume_fresh else None,
        )

    # Single statements each (a CAS, a read): autocommit, no BEGIN/COMMIT round trips.
    claim, follow = _tx(url, start, autocommit=True)
    done, output = _run_claimed(task, claim, follow, url)
    if not done:
        # The step was prepared assuming a fresh row and it was not (a retry, a resume):
        # run again the ordinary way, reading the row.
        if not claim.handed:
            return None
        return _run_step(task, execution_id, node_id, repair=repair, assume_fresh=False)
    if output is _NOTHING:
        return None
    return {"node": node_id, "output": output}


_NOTHING = object()


def _run_claimed(task: Task, claim: runs.Claim, follow: Any, url: str) -> tuple[bool, Any]:
    """Run a claimed step: (False, _) when its outcome's CAS found the row not as assumed,
    else (True, the output it recorded, or _NOTHING)."""
    settings = runtime.settings()
    execution_id, node_id = claim.execution_id, claim.node_id
    if claim.kind == "skip":
        follow = _tx(url, lambda session: runs.skip_step(session, claim))
        if follow is None:
            return False, _NOTHING
    if claim.compiled is not None:
        publish_followups(celery_app, claim.compiled.plan, execution_id, follow)
    if claim.kind != "run":
        return True, _NOTHING
    assert claim.node is not None and claim.compiled is not None
    node = claim.node
    env = handlers.HandlerEnv(
        settings, execution_id, claim.workflow_id, node_id, claim.attempt, node.timeout_seconds
    )
    try:
        if node.type == "delay":
            _park(claim, url)
            return True, _NOTHING
        output = handlers.get(node.type)(node, claim.input, claim.context, env)
    except StepError as exc:
        if claim.handed:
            return False, _NOTHING  # record failures from the row as read, not as assumed
        _handle_failure(task, claim, exc, url)
        return True, _NOTHING
    except Exception as exc:  # a bug or a library error: fail the step, never the worker
        if claim.handed:
            return False, _NOTHING
        log.exception("node %s of execution %s crashed", node_id, execution_id)
        err = StepError(
            f"{type(exc).__name__}: {exc}",
            error_type="internal_error",
            details={"traceback": traceback.format_exc(limit=5)},
        )
        _handle_failure(task, claim, err, url)
        return True, _NOTHING
    follow = _tx(
        url,
        autocommit=runs.completion_is_one_statement(claim),
        work=lambda session: runs.complete_step(session, claim, output),
    )
    if follow is None:
        if claim.handed:
            return False, _NOTHING
        raise _Lost()  # cancelled meanwhile: stop this canvas here
    publish_followups(celery_app, claim.compiled.plan, execution_id, follow)
    return True, output


def _hand_over(task: Task, execution_id: str, handed: dict[str, Any] | None) -> None:
    """Put a step's output into the next chain message, when that step can use it alone.

    The next pure step then reads nothing before its one compare-and-set. Small outputs
    only: the rest of the chain is re-serialized into every hop's message.
    """
    chain = task.request.chain
    if handed is None or not chain:
        return
    nxt = chain[-1]
    if not isinstance(nxt, dict) or nxt.get("task") not in (RUN_NODE, RUN_NODES):
        return
    args = list(nxt.get("args") or [])
    if len(args) < 2 or args[0] != execution_id:
        return
    first = args[1][0] if nxt["task"] == RUN_NODES and args[1] else args[1]
    compiled = runs.cached_compiled(execution_id, runtime.settings().native_chords)
    if (
        not isinstance(first, str)
        or compiled is None
        or first not in compiled.workflow.node_map
        or not runs.prev_usable(compiled, first, handed["node"])
    ):
        return
    try:
        if len(json.dumps(handed["output"])) > HAND_OVER_MAX_BYTES:
            return
    except (TypeError, ValueError):
        return
    nxt.setdefault("kwargs", {})["prev"] = handed


def _database_down(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def _tx(url: str, work: Callable[[Any], T], autocommit: bool = False) -> T:
    """One short transaction, retried while the database is unreachable or locked.

    Past a minute the message goes back to the broker (Reject with requeue): its
    redelivery takes the step over, so a database outage never strands a step.
    """
    try:
        for attempt in Retrying(
            retry=retry_if_exception(_database_down),
            wait=wait_exponential(0.1, max=5),
            stop=stop_after_delay(60),
            reraise=True,
        ):
            with attempt, session_scope(url, progress=True, autocommit=autocommit) as session:
                return work(session)
    except (OperationalError, InterfaceError, DBAPIError) as exc:
        if _database_down(exc):
            log.error("database unreachable; requeueing the message: %s", exc)
            raise Reject(str(exc), requeue=True) from exc
        raise
    raise AssertionError("unreachable")  # pragma: no cover


def _park(claim: runs.Claim, url: str) -> None:
    assert claim.node is not None
    settings = runtime.settings()
    when = delay_handler.wake_at(claim.node, claim.context)
    parked = _tx(url, lambda session: runs.park_step(session, claim, when))
    remaining = (when - datetime.now(UTC)).total_seconds()
    if parked and remaining <= settings.short_delay_seconds:
        publish_wake(celery_app, claim.execution_id, claim.node_id, remaining)
    # Longer waits: the ticker wakes the row; no message is held in worker memory.


def _handle_failure(task: Task, claim: runs.Claim, exc: StepError, url: str) -> None:
    assert claim.node is not None and claim.compiled is not None
    settings = runtime.settings()
    policy = claim.node.effective_retry()
    error = exc.failure().to_dict()
    error["attempt"] = claim.attempt
    if exc.retryable and claim.attempt < policy.max_attempts:
        delay = policy.delay_for(claim.attempt, random.random())
        retry_after = exc.details.get("retry_after") if isinstance(exc.details, dict) else None
        if isinstance(retry_after, str) and retry_after.isdigit():
            delay = max(delay, min(float(retry_after), policy.max_seconds))
        parked = delay > settings.short_delay_seconds
        scheduled = _tx(
            url, lambda session: runs.schedule_retry(session, claim, error, delay, parked)
        )
        if not scheduled or parked:
            raise Ignore()
        raise task.retry(countdown=math.ceil(delay), max_retries=None)
    queue = (task.request.delivery_info or {}).get("routing_key")
    follow = _tx(
        url,
        lambda session: runs.fail_step(session, claim, error, message=_message(task), queue=queue),
    )
    publish_followups(celery_app, claim.compiled.plan, claim.execution_id, follow)
    # Rejected without requeue: the broker moves the message to the dead-letter queue.
    raise Reject(error["message"], requeue=False)


@celery_app.task(name=WAKE_STEP, bind=True, acks_late=True, reject_on_worker_lost=True)
def wake_step(self: Task, execution_id: str, node_id: str) -> None:
    """End a delay whose time has come and resume what follows it."""
    settings = runtime.settings()
    with session_scope(settings.effective_database_url) as session:
        follow = runs.wake_step(session, execution_id, node_id, chords=settings.native_chords)
        plan = None
        if follow is not None:
            exe = session.get(runs.E, execution_id)
            assert exe is not None
            plan = runs.load_compiled(
                session, exe.workflow_id, exe.workflow_version, settings.native_chords
            ).plan
    if follow is not None and plan is not None:
        publish_followups(celery_app, plan, execution_id, follow)


@worker_ready.connect
def _declare_dead_letter_queue(sender: Any = None, **_: Any) -> None:
    settings = runtime.settings()
    if settings.embedded_broker:
        return
    from .queues import declare_queues

    declare_queues(celery_app)
