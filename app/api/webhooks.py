"""POST /api/webhooks/{trigger_id}: a public URL that starts a workflow.

No API key: a trigger with a ``secret`` authenticates each delivery by signature::

    X-Canvasflow-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>

With ``X-Canvasflow-Timestamp: <unix seconds>`` the signed message is
``"<timestamp>." + raw body`` instead, and a trigger with ``max_skew_seconds`` requires
that header within that many seconds of now (replay protection). Signatures are
compared in constant time.

Checks run in this order, and none of them starts anything: unknown (or not a webhook)
trigger 404, body over ``max_body_bytes`` 413, bad or missing signature 401, disabled
trigger 409, malformed JSON 400, queue too deep 429.

The execution input is ``{"body", "headers", "query"}``: the body parsed as JSON when it
is sent as JSON (or untyped and parses), else as text; header names lower-cased, minus
credentials (Authorization, Cookie); query parameters with repeated names as lists.
An ``Idempotency-Key`` header makes redeliveries return the first execution.

``mode: async`` answers 202 ``{"execution_id", "status"}``. ``mode: sync`` waits (the
trigger's ``timeout_seconds``, else ``webhook_sync_timeout_seconds``) for the first
``webhook_response`` node and answers with its status, headers and body (a string body
as text, anything else as JSON). If the execution ends without one: 200
``{"execution_id", "status", "output"}`` when it succeeded, 502 problem+json when it
failed or was cancelled. Past the wait: 504 problem+json; the execution keeps running.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request
from pydantic import BaseModel, Field
from sqlalchemy import select, update
from werkzeug.exceptions import RequestEntityTooLarge

from engine.errors import BadRequest, CanvasflowError, Conflict, NotFound, Unauthorized
from engine.states import EXECUTION_TERMINAL, ExecutionStatus
from models import Execution, Trigger, session_scope, utcnow

from ..bodies import is_json_mimetype, parse_json
from ..db import get_celery, get_session, get_settings
from ..openapi import responses, spec

bp = Blueprint("webhooks", __name__)
TAGS = ["webhooks"]

SIGNATURE_HEADER = "X-Canvasflow-Signature"
TIMESTAMP_HEADER = "X-Canvasflow-Timestamp"
# Credentials never go into the stored execution input.
DROPPED_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
# Set by the server for the reply it sends; a node may not choose them.
HOP_BY_HOP = frozenset(
    {"connection", "content-length", "keep-alive", "transfer-encoding", "upgrade", "te"}
)
MAX_IDEMPOTENCY_KEY = 200
POLL_FIRST, POLL_MAX = 0.02, 0.05
TERMINAL = frozenset(s.value for s in EXECUTION_TERMINAL)


class WebhookTimeout(CanvasflowError):
    """A sync webhook's execution did not reach a webhook_response in time (it keeps running)."""

    status = 504
    title = "Gateway timeout"


class WebhookExecutionFailed(CanvasflowError):
    """A sync webhook's execution failed or was cancelled before any webhook_response."""

    status = 502
    title = "Bad gateway"


class WebhookAccepted(BaseModel):
    execution_id: str
    status: str


class WebhookFinished(BaseModel):
    """Sync mode, when the execution succeeded without a webhook_response node."""

    execution_id: str
    status: str
    output: Any = Field(description="the execution output")


# -- pure helpers ----------------------------------------------------------------------------


def signature(secret: str, body: bytes, timestamp: str | None = None) -> str:
    """The ``sha256=<hex>`` header value for ``body`` (and ``timestamp``, when sent)."""
    message = body if timestamp is None else timestamp.encode("ascii") + b"." + body
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    config: dict[str, Any], body: bytes, headers: Any, now: float | None = None
) -> None:
    """Unauthorized unless the delivery is signed with the trigger's secret (if it has one)."""
    secret = config.get("secret")
    if not secret:
        return
    given = (headers.get(SIGNATURE_HEADER) or "").strip()
    if not given:
        raise Unauthorized(
            f"This webhook needs a {SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of the body> header."
        )
    timestamp = headers.get(TIMESTAMP_HEADER)
    max_skew = config.get("max_skew_seconds")
    if timestamp is not None:
        timestamp = timestamp.strip()
        if not timestamp.isdigit() or len(timestamp) > 12:
            raise Unauthorized(f"{TIMESTAMP_HEADER} must be unix seconds.")
    if max_skew:
        if timestamp is None:
            raise Unauthorized(f"This webhook needs an {TIMESTAMP_HEADER} header (unix seconds).")
        skew = abs((time.time() if now is None else now) - int(timestamp))
        if skew > float(max_skew):
            raise Unauthorized(
                f"{TIMESTAMP_HEADER} is {int(skew)} s away from now; at most {max_skew} allowed."
            )
    expected = signature(secret, body, timestamp).encode("ascii")
    if not hmac.compare_digest(expected, given.lower().encode("utf-8", "replace")):
        raise Unauthorized(f"The {SIGNATURE_HEADER} does not match the body.")


def _text(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(
            f"The body is neither JSON nor UTF-8 text (byte {exc.start} is not UTF-8)."
        ) from exc
    if "\x00" in text:
        raise BadRequest("The body contains NUL characters.")
    return text


def parse_body(data: bytes, mimetype: str) -> Any:
    """JSON when sent as JSON (or untyped and parseable), else text; empty is null."""
    if not data.strip():
        return None
    text = _text(data)
    if mimetype and is_json_mimetype(mimetype):
        return parse_json(text)
    if not mimetype:
        try:
            return parse_json(text)
        except CanvasflowError:
            return text
    return text


def request_headers() -> dict[str, str]:
    """Header names lower-cased, minus credentials."""
    return {
        name.lower(): value
        for name, value in request.headers.items()
        if name.lower() not in DROPPED_HEADERS
    }


def request_query() -> dict[str, Any]:
    """Query parameters; a repeated name becomes a list."""
    return {
        name: values[0] if len(values) == 1 else values
        for name, values in request.args.to_dict(flat=False).items()
    }


# -- the route -------------------------------------------------------------------------------


def _webhook_trigger(trigger_id: str) -> Trigger:
    if not trigger_id or len(trigger_id) > 64 or "\x00" in trigger_id:
        raise NotFound(f"Webhook {trigger_id} not found.")
    trigger = get_session().get(Trigger, trigger_id)
    if trigger is None or trigger.type != "webhook":
        raise NotFound(f"Webhook {trigger_id} not found.")
    return trigger


def _raw_body(limit: int) -> bytes:
    data = request.get_data(cache=True)  # 413 past MAX_CONTENT_LENGTH, with or without length
    if len(data) > limit:
        raise RequestEntityTooLarge()
    return data


def _idempotency_key(trigger_id: str) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_IDEMPOTENCY_KEY:
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters.")
    return f"webhook:{trigger_id}:{key}"


@bp.post("/api/webhooks/<trigger_id>")
@spec.validate(
    resp=responses(
        400, 401, 404, 409, 413, 429, 502, 503, 504, HTTP_202=WebhookAccepted, HTTP_200=None
    ),
    tags=TAGS,
    skip_validation=True,
)
def receive_webhook(trigger_id: str):
    """Start the trigger's workflow with {body, headers, query}; async 202, sync the node's reply.

    Sync replies are whatever the workflow's webhook_response node says (any status); 200
    with {execution_id, status, output} if it succeeded without one, 502 if it failed.
    """
    from tasks.backpressure import check_backpressure
    from tasks.service import start_execution

    settings = get_settings()
    trigger = _webhook_trigger(trigger_id)
    raw = _raw_body(settings.max_body_bytes)
    config = dict(trigger.config or {})
    verify_signature(config, raw, request.headers)
    if not trigger.enabled:
        raise Conflict(f"Webhook {trigger_id} is disabled.")
    payload = {
        "body": parse_body(raw, request.mimetype),
        "headers": request_headers(),
        "query": request_query(),
    }
    key = _idempotency_key(trigger_id)
    user_id, workflow_id = trigger.user_id, trigger.workflow_id
    get_session().close()  # nothing held open while publishing or waiting
    celery = get_celery()
    check_backpressure(settings, celery)
    execution, created = start_execution(
        settings,
        celery,
        user_id=user_id,
        workflow_id=workflow_id,
        input=payload,
        idempotency_key=key,
        trigger_id=trigger_id,
    )
    if created:
        _mark_fired(settings.effective_database_url, trigger_id)
    if config.get("mode") == "sync":
        timeout = float(config.get("timeout_seconds") or settings.webhook_sync_timeout_seconds)
        response = _wait_for_reply(settings.effective_database_url, execution.id, timeout)
    else:
        response = jsonify({"execution_id": execution.id, "status": execution.status})
        response.status_code = 202
        response.headers["Location"] = f"/api/executions/{execution.id}"
    response.headers["X-Canvasflow-Execution-Id"] = execution.id
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _mark_fired(url: str, trigger_id: str) -> None:
    with session_scope(url) as s:
        s.execute(
            update(Trigger)
            .where(Trigger.id == trigger_id)
            .values(last_fired_at=utcnow(), updated_at=Trigger.updated_at)
        )


# -- sync mode -------------------------------------------------------------------------------


def _wait_for_reply(url: str, execution_id: str, timeout: float) -> Response:
    """Poll the execution (fresh short sessions) until it has a reply, ends, or time runs out."""
    deadline = time.monotonic() + timeout
    pause = POLL_FIRST
    while True:
        with session_scope(url) as s:
            row = s.execute(
                select(
                    Execution.status, Execution.response, Execution.output, Execution.error
                ).where(Execution.id == execution_id)
            ).one()
        if row.response is not None:
            return _node_reply(row.response)
        if row.status in TERMINAL:
            if row.status == ExecutionStatus.SUCCEEDED.value:
                return jsonify(
                    {"execution_id": execution_id, "status": row.status, "output": row.output}
                )
            raise WebhookExecutionFailed(
                f"Execution {execution_id} {row.status} without a webhook_response.",
                execution_id=execution_id,
                error=row.error,
            )
        left = deadline - time.monotonic()
        if left <= 0:
            raise WebhookTimeout(
                f"Execution {execution_id} reached no webhook_response within {timeout:g} s; "
                "it keeps running.",
                execution_id=execution_id,
            )
        time.sleep(min(pause, left))
        pause = min(pause * 1.5, POLL_MAX)


def _node_reply(reply: dict[str, Any]) -> Response:
    """The webhook_response node's {status, headers, body} as an HTTP response."""
    status = int(reply.get("status") or 200)
    headers = {
        str(k): str(v)
        for k, v in (reply.get("headers") or {}).items()
        if str(k).lower() not in HOP_BY_HOP
    }
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
    body = reply.get("body")
    if status < 200 or status in (204, 304) or body is None:
        data, default_type = b"", None
    elif isinstance(body, str):
        data, default_type = body.encode("utf-8"), "text/plain; charset=utf-8"
    else:
        data = current_app.json.dumps(body).encode("utf-8")
        default_type = "application/json"
    response = Response(data, status=status)
    response.headers.pop("Content-Type", None)
    for name, value in headers.items():
        response.headers[name] = value
    if content_type is None and default_type is not None:
        response.headers["Content-Type"] = default_type
    return response
