"""The one mapping from errors to ``application/problem+json`` (RFC 9457).

    CanvasflowError (engine.errors)   -> its .status / .title; 422s carry ``errors``
    werkzeug HTTPException            -> same shape (404 route, 405, 413, 415, ...)
    database unreachable              -> 503, Retry-After
    concurrent write lost a race      -> 409
    anything else                     -> 500, logged with an error id, nothing leaked

Views raise; they never build error responses themselves.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from flask import Flask, Response, current_app, request
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from engine.errors import (
    CanvasflowError,
    InvalidInput,
    InvalidWorkflow,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
)

PROBLEM_MIMETYPE = "application/problem+json"
log = logging.getLogger("canvasflow.api")


def _slug(cls: type) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", cls.__name__).lower()


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    type_: str = "about:blank",
    headers: dict[str, str] | None = None,
    **members: Any,
) -> Response:
    """A problem+json response; extra ``members`` (e.g. ``errors``) go into the body."""
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body["instance"] = request.path
    body.update(members)
    response = current_app.json.response(body)
    response.status_code = status
    response.mimetype = PROBLEM_MIMETYPE
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _wants_problem() -> bool:
    # Pages outside /api (the web admin) keep werkzeug's HTML unless JSON is preferred.
    if request.path == "/api" or request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json", PROBLEM_MIMETYPE])
    return best in {"application/json", PROBLEM_MIMETYPE}


def handle_canvasflow_error(err: CanvasflowError) -> Response:
    """A Canvasflow error as its own status and title; 422s list their problems."""
    members: dict[str, Any] = {
        k: v for k, v in err.extra.items() if k not in {"type", "title", "status"}
    }
    headers: dict[str, str] = {}
    if isinstance(err, InvalidWorkflow | InvalidInput):
        members["errors"] = [p.to_dict() for p in err.problems]
    if isinstance(err, TooManyRequests):
        headers["Retry-After"] = str(max(1, int(err.retry_after)))
    if isinstance(err, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="canvasflow"'
    if isinstance(err, ServiceUnavailable):
        headers.setdefault("Retry-After", "5")
    if err.status >= 500:
        log.warning("%s: %s", type(err).__name__, err.detail)
    return problem(
        err.status,
        err.title,
        err.detail,
        type_=f"urn:canvasflow:problem:{_slug(type(err))}",
        headers=headers,
        **members,
    )


def _http_detail(err: HTTPException) -> str | None:
    if err is request.routing_exception:
        if err.code == 404:
            return f"No route for {request.method} {request.path}."
        if err.code == 405:
            allowed = ", ".join(sorted(getattr(err, "valid_methods", None) or []))
            return f"{request.method} is not allowed on {request.path}; allowed: {allowed}."
    if err.code == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        return f"The request body is larger than the {limit}-byte limit."
    return err.description


def handle_http_exception(err: HTTPException) -> Response | HTTPException:
    """Werkzeug's 404/405/413/415... in the same shape (HTML stays HTML outside /api)."""
    if err.code is None or not _wants_problem():
        return err
    headers = {}
    for name, value in err.get_headers():
        if name.lower() in {"allow", "retry-after", "www-authenticate"}:
            headers[name] = value
    return problem(err.code, err.name, _http_detail(err), headers=headers)


def handle_database_unavailable(err: Exception) -> Response:
    """503: the database did not answer."""
    log.warning("database unavailable: %s", err.__class__.__name__, exc_info=err)
    return problem(
        503,
        "Service unavailable",
        "The database is unavailable; try again shortly.",
        type_="urn:canvasflow:problem:database-unavailable",
        headers={"Retry-After": "5"},
    )


def handle_integrity_error(err: sa_exc.IntegrityError) -> Response:
    """409: a unique constraint fired because a concurrent request won."""
    # Our own checks run first, so a constraint firing means a concurrent change won.
    log.info("integrity error (concurrent change): %s", err.orig)
    return problem(
        409,
        "Conflict",
        "The resource was changed concurrently; retry the request.",
        type_="urn:canvasflow:problem:conflict",
    )


def handle_unexpected(err: Exception) -> Response:
    """500 with an error id to quote; the details go to the log only."""
    error_id = uuid.uuid4().hex
    log.exception(
        "unhandled error %s on %s %s", error_id, request.method, request.path, exc_info=err
    )
    return problem(
        500,
        "Internal server error",
        f"An unexpected error occurred; it was logged as {error_id}.",
        error_id=error_id,
    )


def _is_disconnect(err: sa_exc.DBAPIError) -> bool:
    return bool(err.connection_invalidated) or isinstance(
        err, sa_exc.OperationalError | sa_exc.InterfaceError
    )


def handle_dbapi_error(err: sa_exc.DBAPIError) -> Response:
    """Database errors: 409 for constraints, 503 for lost connections, else 500."""
    if isinstance(err, sa_exc.IntegrityError):
        return handle_integrity_error(err)
    if _is_disconnect(err):
        return handle_database_unavailable(err)
    return handle_unexpected(err)


def init_app(app: Flask) -> None:
    """Register every handler; the most specific class wins (Flask walks the MRO)."""
    app.register_error_handler(CanvasflowError, handle_canvasflow_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(sa_exc.DBAPIError, handle_dbapi_error)
    app.register_error_handler(sa_exc.TimeoutError, handle_database_unavailable)  # pool exhausted
    app.register_error_handler(Exception, handle_unexpected)
