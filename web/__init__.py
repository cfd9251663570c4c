"""The web admin: server-rendered page shells that call the JSON API from the browser.

Each page is a template (``web/templates/web/``) plus a small ES module
(``web/static/js/pages/``). The server knows nothing about the user: it needs no API
key and reads no rows. The browser asks for the key once, keeps it in sessionStorage
and sends it as ``Authorization: Bearer`` on every ``/api`` call, so the API's own
checks (ownership, 401, 404) apply unchanged. Workers are watched in Flower, not here.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, render_template

bp = Blueprint(
    "web",
    __name__,
    template_folder="templates",
    static_folder="static",
    # Not /static: the Flask app may grow its own static folder there.
    static_url_path="/assets",
)

# The pages, in navigation order: (endpoint, label).
NAV = [
    ("web.dashboard", "Dashboard"),
    ("web.workflows", "Workflows"),
    ("web.executions", "Executions"),
    ("web.triggers", "Triggers"),
    ("web.dead_letters", "Dead letters"),
    ("web.queues", "Queues"),
    ("web.audit", "Audit log"),
]

# Everything the pages load comes from this origin: scripts, styles, API calls.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'"
)


def _page(template: str, title: str, section: str, script: str, **context: object) -> str:
    settings = current_app.extensions.get("canvasflow")
    flower_url = None
    if settings is not None and not settings.embedded_broker:
        flower_url = settings.extra.get("flower_url", "/flower/")
    return render_template(
        f"web/{template}",
        title=title,
        section=section,
        script=script,
        nav=NAV,
        flower_url=flower_url,
        **context,
    )


@bp.after_request
def _headers(response: Response) -> Response:
    # The API key lives in sessionStorage: keep other origins' scripts and frames out.
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


@bp.get("/")
def dashboard() -> str:
    """Executions by status, recent executions, queues, heartbeats, health."""
    return _page("dashboard.html", "Dashboard", "web.dashboard", "dashboard")


@bp.get("/login")
def login() -> str:
    """Ask for the API key once; the browser keeps it for the session."""
    return _page("login.html", "Sign in", "", "login")


@bp.get("/workflows")
def workflows() -> str:
    """Every workflow, with links to its detail and editor."""
    return _page("workflows.html", "Workflows", "web.workflows", "workflows")


@bp.get("/workflows/new")
def new_workflow() -> str:
    """The DAG editor on an empty canvas."""
    return _page("editor.html", "New workflow", "web.workflows", "editor", workflow_id="")


@bp.get("/workflows/<workflow_id>")
def workflow(workflow_id: str) -> str:
    """One workflow: its graph, versions, compiled plan, executions and a Run form."""
    return _page("workflow.html", "Workflow", "web.workflows", "workflow", workflow_id=workflow_id)


@bp.get("/workflows/<workflow_id>/edit")
def edit_workflow(workflow_id: str) -> str:
    """The DAG editor on the current version; saving makes a new version."""
    return _page("editor.html", "Edit workflow", "web.workflows", "editor", workflow_id=workflow_id)


@bp.get("/executions")
def executions() -> str:
    """Executions, filterable by workflow and status."""
    return _page("executions.html", "Executions", "web.executions", "executions")


@bp.get("/executions/<execution_id>")
def execution(execution_id: str) -> str:
    """The live timeline: the DAG coloured by step status and a Gantt of attempts."""
    return _page(
        "execution.html",
        "Execution",
        "web.executions",
        "execution",
        execution_id=execution_id,
    )


@bp.get("/triggers")
def triggers() -> str:
    """Manual, webhook and cron triggers: create, enable, disable, delete."""
    return _page("triggers.html", "Triggers", "web.triggers", "triggers")


@bp.get("/dead-letters")
def dead_letters() -> str:
    """Dead-lettered steps: inspect, replay, discard."""
    return _page("dead_letters.html", "Dead letters", "web.dead_letters", "dead_letters")


@bp.get("/queues")
def queues() -> str:
    """Ready, unacked and dead-lettered messages per queue."""
    return _page("queues.html", "Queues", "web.queues", "queues")


@bp.get("/audit")
def audit() -> str:
    """The audit log, filterable by action, entity and time."""
    return _page("audit.html", "Audit log", "web.audit", "audit")
