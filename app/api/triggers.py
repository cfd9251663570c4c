"""/api/triggers: what starts a workflow without a hand on the API (manual, webhook, cron).

A trigger belongs to a user and points at one of their workflows. Its ``config`` depends
on its ``type``:

- ``cron``: ``{"cron", "timezone"?: IANA name (UTC), "input"?, "misfire"?: fire_once|skip}``;
  5 fields, or 6 with seconds first (``*/2 * * * * *``). ``next_fire_at`` is computed
  here and again by beat, which reads this table on every tick.
- ``webhook``: ``{"mode": async|sync, "secret"?, "timeout_seconds"?, "max_skew_seconds"?}``;
  replies carry the ``url`` to POST to. The secret is shown in the create reply only and
  masked as ``***`` after that; sending ``***`` back in a PUT keeps the stored one.
- ``manual``: ``{"input"?}``, started with POST /api/triggers/{id}/fire.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from flask import Blueprint, jsonify, request, url_for
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select, update

from engine.cron import CronSchedule, InvalidCron
from engine.errors import Conflict, InvalidInput, NotFound, Problem
from models import Trigger, Workflow, utcnow

from .. import audit
from ..auth import current_user_id, get_owned
from ..bodies import choice_arg, json_body, problems_from_validation_error, query_arg
from ..db import get_celery, get_session, get_settings
from ..openapi import responses, spec
from ..pagination import MAX_LIMIT, page_args, paginate

bp = Blueprint("triggers", __name__)
TAGS = ["triggers"]
TYPES = ("manual", "webhook", "cron")
MASK = "***"

TriggerType = Literal["manual", "webhook", "cron"]


# -- configs per type ------------------------------------------------------------------------


class CronConfig(BaseModel):
    """config of a cron trigger."""

    model_config = ConfigDict(strict=True, extra="forbid")

    cron: str = Field(min_length=1, max_length=200, description="5 fields, or 6 with seconds first")
    timezone: str = Field("UTC", min_length=1, max_length=64, description="an IANA time zone")
    input: Any = Field(None, description="the input of every execution it starts")
    misfire: Literal["fire_once", "skip"] = Field(
        "fire_once",
        description="after downtime: fire once for the latest missed occurrence, or skip",
    )


class WebhookConfig(BaseModel):
    """config of a webhook trigger."""

    model_config = ConfigDict(strict=True, extra="forbid")

    mode: Literal["async", "sync"] = Field(
        description="async: 202 with the execution id; sync: the webhook_response node's reply"
    )
    secret: str | None = Field(
        None,
        min_length=1,
        max_length=512,
        description="requires X-Canvasflow-Signature: sha256=<hex HMAC-SHA256 of the raw body>",
    )
    timeout_seconds: float | None = Field(
        None, gt=0, le=300, description="sync mode: how long to wait for a webhook_response"
    )
    max_skew_seconds: float | None = Field(
        None,
        gt=0,
        le=86_400,
        description="replay protection: require X-Canvasflow-Timestamp within this many seconds",
    )


class ManualConfig(BaseModel):
    """config of a manual trigger."""

    model_config = ConfigDict(strict=True, extra="forbid")

    input: Any = Field(None, description="the input when /fire is called without one")


CONFIG_MODELS: dict[str, type[BaseModel]] = {
    "cron": CronConfig,
    "webhook": WebhookConfig,
    "manual": ManualConfig,
}


# -- request and reply models ----------------------------------------------------------------


class TriggerCreate(BaseModel):
    """Body of POST /api/triggers."""

    model_config = ConfigDict(strict=True, extra="forbid")

    workflow_id: str = Field(min_length=1, max_length=64)
    type: TriggerType
    config: dict[str, Any] = Field(
        default_factory=dict, description="CronConfig, WebhookConfig or ManualConfig"
    )
    enabled: bool = True


class TriggerUpdate(BaseModel):
    """Body of PUT /api/triggers/{id}: any subset of the fields; the result is revalidated."""

    model_config = ConfigDict(strict=True, extra="forbid")

    workflow_id: str | None = Field(None, min_length=1, max_length=64)
    type: TriggerType | None = None
    config: dict[str, Any] | None = None
    enabled: bool | None = None


class TriggerFire(BaseModel):
    """Body of POST /api/triggers/{id}/fire (optional)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    input: Any = Field(None, description="default: the trigger's config.input")
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)


class TriggerOut(BaseModel):
    id: str
    workflow_id: str
    type: TriggerType
    config: dict[str, Any] = Field(description="a webhook secret is masked as '***' after creation")
    enabled: bool
    url: str | None = Field(None, description="webhook triggers: where to POST")
    next_fire_at: datetime | None = Field(None, description="cron triggers: the next fire time")
    last_fired_at: datetime | None
    created_at: datetime
    updated_at: datetime


class TriggerPage(BaseModel):
    items: list[TriggerOut]
    next_cursor: str | None


class TriggerListQuery(BaseModel):
    workflow_id: str | None = None
    type: TriggerType | None = None
    limit: int = Field(50, ge=1, le=MAX_LIMIT)
    cursor: str | None = None


class FireOut(BaseModel):
    execution_id: str
    status: str
    trigger_id: str


# -- helpers ---------------------------------------------------------------------------------


def trigger_json(trigger: Trigger, *, reveal_secret: bool = False) -> dict[str, Any]:
    """A trigger as the API shows it; the webhook secret masked unless ``reveal_secret``."""
    config = dict(trigger.config or {})
    if trigger.type == "webhook" and config.get("secret") and not reveal_secret:
        config["secret"] = MASK
    out: dict[str, Any] = {
        "id": trigger.id,
        "workflow_id": trigger.workflow_id,
        "type": trigger.type,
        "config": config,
        "enabled": trigger.enabled,
    }
    if trigger.type == "webhook":
        out["url"] = request.host_url.rstrip("/") + f"/api/webhooks/{trigger.id}"
    if trigger.type == "cron":
        out["next_fire_at"] = trigger.next_fire_at
    out.update(
        last_fired_at=trigger.last_fired_at,
        created_at=trigger.created_at,
        updated_at=trigger.updated_at,
    )
    return out


def validate_config(type_: str, config: Any) -> dict[str, Any]:
    """The stored form of a trigger's ``config``, or one 422 listing every problem."""
    if not isinstance(config, dict):
        raise InvalidInput([Problem("/config", "must be a JSON object")])
    try:
        parsed = CONFIG_MODELS[type_].model_validate(config)
    except ValidationError as exc:
        raise InvalidInput(problems_from_validation_error(exc, "/config")) from None
    if isinstance(parsed, CronConfig):
        problems = []
        try:
            CronSchedule.parse(parsed.cron, parsed.timezone)
        except InvalidCron as exc:
            problems.append(Problem(f"/config/{exc.field}", exc.message))
            if exc.field == "cron":  # report a bad zone too, not one problem per request
                try:
                    CronSchedule.parse("* * * * *", parsed.timezone)
                except InvalidCron as zone_exc:
                    problems.append(Problem("/config/timezone", zone_exc.message))
        if problems:
            raise InvalidInput(problems)
        return parsed.model_dump()
    return parsed.model_dump(exclude_none=True)


def _owned_workflow(session: Any, workflow_id: str) -> Workflow:
    """The user's (not deleted) workflow, else 404 pointing at /workflow_id."""
    try:
        return get_owned(session, Workflow, workflow_id)
    except NotFound:
        raise NotFound(
            f"Workflow {workflow_id} not found.",
            errors=[{"pointer": "/workflow_id", "message": "no such workflow"}],
        ) from None


def _next_fire_at(trigger: Trigger) -> datetime | None:
    """When an enabled cron trigger fires next (None otherwise: nothing to schedule)."""
    if trigger.type != "cron" or not trigger.enabled:
        return None
    schedule = CronSchedule.parse(trigger.config["cron"], trigger.config.get("timezone") or "UTC")
    return schedule.next_after(utcnow())


def _schedule_key(type_: str, config: dict[str, Any], enabled: bool) -> tuple[Any, ...]:
    """What next_fire_at depends on; a change recomputes it."""
    if type_ != "cron":
        return (type_, enabled)
    return (type_, enabled, config.get("cron"), config.get("timezone"))


def _validated(model: type[BaseModel], document: Any) -> Any:
    if not isinstance(document, dict):
        raise InvalidInput([Problem("", "expected a JSON object")])
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        raise InvalidInput(problems_from_validation_error(exc)) from None


# -- routes ----------------------------------------------------------------------------------


@bp.get("/api/triggers")
@spec.validate(
    query=TriggerListQuery,
    resp=responses(400, 401, 422, HTTP_200=TriggerPage),
    tags=TAGS,
    skip_validation=True,
)
def list_triggers():
    """List your triggers, newest first; filter by workflow_id and type."""
    limit, cursor = page_args()
    stmt = select(Trigger).where(Trigger.user_id == current_user_id())
    workflow_id = query_arg("workflow_id")
    if workflow_id:
        stmt = stmt.where(Trigger.workflow_id == workflow_id)
    type_ = choice_arg("type", TYPES)
    if type_:
        stmt = stmt.where(Trigger.type == type_)
    return jsonify(paginate(get_session(), stmt, Trigger, limit, cursor, trigger_json))


@bp.post("/api/triggers")
@spec.validate(
    json=TriggerCreate,
    resp=responses(400, 401, 404, 413, 415, 422, HTTP_201=TriggerOut),
    tags=TAGS,
    skip_validation=True,
)
def create_trigger():
    """Create a manual, webhook or cron trigger on one of your workflows (201)."""
    body = _validated(TriggerCreate, json_body())
    config = validate_config(body.type, body.config)
    session = get_session()
    user_id = current_user_id()
    _owned_workflow(session, body.workflow_id)
    trigger = Trigger(
        user_id=user_id,
        workflow_id=body.workflow_id,
        type=body.type,
        config=config,
        enabled=body.enabled,
    )
    trigger.next_fire_at = _next_fire_at(trigger)
    session.add(trigger)
    session.flush()
    audit.record(
        session,
        user_id,
        "trigger.create",
        "trigger",
        trigger.id,
        {"workflow_id": trigger.workflow_id, "type": trigger.type, "enabled": trigger.enabled},
    )
    session.commit()
    response = jsonify(trigger_json(trigger, reveal_secret=True))
    response.status_code = 201
    response.headers["Location"] = url_for(".get_trigger", trigger_id=trigger.id)
    return response


@bp.get("/api/triggers/<trigger_id>")
@spec.validate(resp=responses(401, 404, HTTP_200=TriggerOut), tags=TAGS, skip_validation=True)
def get_trigger(trigger_id: str):
    """One of your triggers."""
    return jsonify(trigger_json(get_owned(get_session(), Trigger, trigger_id)))


@bp.put("/api/triggers/<trigger_id>")
@spec.validate(
    json=TriggerUpdate,
    resp=responses(400, 401, 404, 413, 415, 422, HTTP_200=TriggerOut),
    tags=TAGS,
    skip_validation=True,
)
def update_trigger(trigger_id: str):
    """Change a trigger; a new schedule or enabled flag applies from beat's next tick."""
    document = json_body()
    body = _validated(TriggerUpdate, document)
    for name in ("workflow_id", "type", "config", "enabled"):
        if name in document and document[name] is None:
            raise InvalidInput([Problem(f"/{name}", "must not be null")])
    session = get_session()
    trigger = get_owned(session, Trigger, trigger_id, for_update=True)
    type_ = body.type or trigger.type
    config = body.config if body.config is not None else dict(trigger.config)
    if body.config is not None and type_ == "webhook" and config.get("secret") == MASK:
        old_secret = (trigger.config or {}).get("secret") if trigger.type == "webhook" else None
        if old_secret is None:
            raise InvalidInput([Problem("/config/secret", "'***' keeps a secret; none is set")])
        config = {**config, "secret": old_secret}
    if body.type is not None and body.type != trigger.type and body.config is None:
        raise InvalidInput([Problem("/config", f"a new config is required for type {type_}")])
    config = validate_config(type_, config)
    enabled = trigger.enabled if body.enabled is None else body.enabled
    workflow_id = body.workflow_id or trigger.workflow_id
    if workflow_id != trigger.workflow_id or (enabled and not trigger.enabled):
        _owned_workflow(session, workflow_id)  # enabling needs a workflow that still exists
    reschedule = _schedule_key(type_, config, enabled) != _schedule_key(
        trigger.type, trigger.config or {}, trigger.enabled
    )
    changed = sorted(
        name
        for name, new, old in (
            ("workflow_id", workflow_id, trigger.workflow_id),
            ("type", type_, trigger.type),
            ("config", config, trigger.config),
            ("enabled", enabled, trigger.enabled),
        )
        if new != old
    )
    trigger.workflow_id = workflow_id
    trigger.type = type_
    trigger.config = config
    trigger.enabled = enabled
    if reschedule:
        trigger.next_fire_at = _next_fire_at(trigger)
    if changed:
        trigger.updated_at = utcnow()
        audit.record(
            session,
            current_user_id(),
            "trigger.update",
            "trigger",
            trigger.id,
            {"changed": changed, "enabled": enabled},
        )
    session.commit()
    return jsonify(trigger_json(trigger))


@bp.delete("/api/triggers/<trigger_id>")
@spec.validate(resp=responses(401, 404, HTTP_204=None), tags=TAGS, skip_validation=True)
def delete_trigger(trigger_id: str):
    """Delete a trigger (204); the executions it started remain."""
    session = get_session()
    trigger = get_owned(session, Trigger, trigger_id, for_update=True)
    audit.record(
        session,
        current_user_id(),
        "trigger.delete",
        "trigger",
        trigger.id,
        {"workflow_id": trigger.workflow_id, "type": trigger.type},
    )
    session.delete(trigger)
    session.commit()
    return "", 204


@bp.post("/api/triggers/<trigger_id>/fire")
@spec.validate(
    json=TriggerFire,
    resp=responses(400, 401, 404, 409, 413, 415, 422, 429, 503, HTTP_202=FireOut),
    tags=TAGS,
    skip_validation=True,
)
def fire_trigger(trigger_id: str):
    """Start a manual trigger's workflow now (202); the body's input overrides config.input."""
    from tasks.backpressure import check_backpressure
    from tasks.service import start_execution

    session = get_session()
    trigger = get_owned(session, Trigger, trigger_id)
    document = json_body() if request.get_data(cache=True).strip() else {}
    body = _validated(TriggerFire, document)
    payload = body.input if "input" in document else (trigger.config or {}).get("input")
    if trigger.type != "manual":
        raise Conflict(
            f"Trigger {trigger.id} is a {trigger.type} trigger; only manual triggers are "
            "fired by hand (cron fires on schedule, webhooks at their url)."
        )
    if not trigger.enabled:
        raise Conflict(f"Trigger {trigger.id} is disabled; enable it first.")
    user_id = current_user_id()
    workflow_id = trigger.workflow_id
    session.close()  # no transaction held while publishing
    settings, celery = get_settings(), get_celery()
    check_backpressure(settings, celery)
    key = f"manual:{trigger_id}:{body.idempotency_key}" if body.idempotency_key else None
    execution, created = start_execution(
        settings,
        celery,
        user_id=user_id,
        workflow_id=workflow_id,
        input=payload,
        idempotency_key=key,
        trigger_id=trigger_id,
    )
    session = get_session()
    if created:
        audit.record(
            session,
            user_id,
            "trigger.fire",
            "trigger",
            trigger_id,
            {"execution_id": execution.id, "workflow_id": workflow_id},
        )
        session.execute(
            update(Trigger)
            .where(Trigger.id == trigger_id)
            .values(last_fired_at=utcnow(), updated_at=Trigger.updated_at)
        )
        session.commit()
    response = jsonify(
        {"execution_id": execution.id, "status": execution.status, "trigger_id": trigger_id}
    )
    response.status_code = 202
    response.headers["Location"] = f"/api/executions/{execution.id}"
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return response
