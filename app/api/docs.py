"""The API description: /api/openapi.json, and /api/docs to read it.

/api/docs is a self-contained page (works offline); /api/docs/swagger, /redoc and
/scalar are the richer spectree pages, which load their JavaScript from a CDN.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, current_app, jsonify, render_template
from spectree import Response

from ..openapi import DOCS_PATH, openapi_document, spec

bp = Blueprint("docs", __name__)

HTTP_METHODS = ("get", "post", "put", "patch", "delete")
INTERACTIVE = ("swagger", "redoc", "scalar")


@bp.get("/api/openapi.json")
@spec.validate(resp=Response("HTTP_200"), tags=["docs"], security={}, skip_validation=True)
def openapi_json():
    """The OpenAPI 3.1 document."""
    return jsonify(openapi_document(current_app))


@bp.get(DOCS_PATH)
def docs_page():
    """Every operation, grouped by tag, rendered on the server."""
    doc = openapi_document(current_app)
    groups: dict[str, list[dict[str, Any]]] = {}
    for path, operations in doc["paths"].items():
        for method in HTTP_METHODS:
            operation = operations.get(method)
            if operation is None:
                continue
            tag = (operation.get("tags") or ["other"])[0]
            groups.setdefault(tag, []).append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": operation.get("summary", ""),
                    "description": operation.get("description", ""),
                    "public": operation.get("security") == [],
                    "body": sorted(operation.get("requestBody", {}).get("content", {})),
                    "responses": sorted(operation.get("responses", {})),
                }
            )
    return render_template(
        "api/docs.html",
        info=doc["info"],
        groups=sorted(groups.items()),
        interactive=INTERACTIVE,
        docs_path=DOCS_PATH,
    )


@bp.get(f"{DOCS_PATH}/<ui>")
def interactive_docs(ui: str):
    """Swagger UI, Redoc or Scalar (their scripts come from a CDN)."""
    if ui not in INTERACTIVE or ui not in spec.config.page_templates:
        abort(404)
    return spec.config.page_templates[ui].format(
        spec_url="/api/openapi.json",
        spec_path=DOCS_PATH.lstrip("/"),
        **spec.config.swagger_oauth2_config(),
    )
