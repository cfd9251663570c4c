"""Flask application factory: HTTP in, JSON out.

``create_app(settings)`` wires the request-scoped database session, the Celery hook,
the auth check, the problem+json error mapping and every blueprint listed in
:mod:`app.api`. Nothing outside ``app`` imports this package.
"""

from __future__ import annotations

import logging

from flask import Flask

from settings import Settings
from web import bp as web_bp

from . import api, auth, db, errors
from .bodies import BoundedRequest
from .jsonio import CanvasflowJSONProvider


def create_app(settings: Settings | None = None) -> Flask:
    """Build the API application from ``settings`` (default: ``Settings.from_env()``)."""
    settings = settings or Settings.from_env()
    app = Flask(__name__)
    app.request_class = BoundedRequest
    app.json = CanvasflowJSONProvider(app)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        # Werkzeug refuses larger Content-Length with 413 and bounds chunked bodies
        # (wsgi.input_terminated) while they are read, so no body is ever unbounded.
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        CANVASFLOW_SETTINGS=settings,
    )
    app.extensions["canvasflow"] = settings
    logging.getLogger("canvasflow").setLevel(settings.log_level.upper())

    db.init_app(app)
    auth.init_app(app)
    errors.init_app(app)
    api.register_blueprints(app)
    app.register_blueprint(web_bp)  # the admin pages at /
    return app
