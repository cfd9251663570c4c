"""The OpenAPI 3.1 document, generated from the views by spectree.

Every blueprint decorates its views with the one :data:`spec`::

    @bp.post("/api/things")
    @spec.validate(json=ThingIn, resp=responses(401, 404, HTTP_201=ThingOut), tags=["things"],
                   skip_validation=True)
    def create_thing(): ...

``skip_validation=True`` always: views validate with :mod:`app.bodies` so every 422 is our
problem+json. Routes need the bearer key unless :func:`app.auth.is_public`; the document
says so per operation. :func:`openapi_document` builds the JSON served at /api/openapi.json.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from http import HTTPStatus
from importlib import metadata
from typing import Any

from flask import Flask
from pydantic import BaseModel, Field
from spectree import Response, SecurityScheme, SpecTree
from spectree.models import SecureType, SecuritySchemeData
from spectree.utils import get_model_key

from .auth import is_public
from .errors import PROBLEM_MIMETYPE

try:
    VERSION = metadata.version("canvasflow")
except metadata.PackageNotFoundError:  # running from a checkout that was never installed
    VERSION = "0.0.0"

DOCS_PATH = "/api/docs"
YAML_MIMETYPE = "application/yaml"


class ProblemItem(BaseModel):
    """One located problem of a 422."""

    pointer: str = Field(
        description="JSON pointer into the request body ('/query/<name>' for parameters)"
    )
    message: str
    node_id: str | None = Field(None, description="the workflow node concerned, when there is one")


class Problem(BaseModel):
    """An RFC 9457 problem, served as application/problem+json."""

    type: str = Field(description="'about:blank' or a urn:canvasflow:problem:* identifier")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = Field(None, description="the request path")
    errors: list[ProblemItem] | None = Field(None, description="every problem, on 422")


_schema_owners: dict[str, str] = {}


def _schema_name(model: Any) -> str:
    # Readable component names; a clash between modules falls back to spectree's hashed key.
    key = get_model_key(model)
    name, _, _ = key.partition(".")
    owner = _schema_owners.setdefault(name, key)
    return name if owner == key else key


spec = SpecTree(
    "flask",
    title="Canvasflow",
    version=VERSION,
    description="Durable workflow orchestration on Celery: DAG and Serverless Workflow 1.0.",
    path=DOCS_PATH.lstrip("/"),
    annotations=False,
    naming_strategy=_schema_name,
    validation_error_model=Problem,
    security_schemes=[
        SecurityScheme(
            name="bearerAuth",
            data=SecuritySchemeData(
                type=SecureType.HTTP,
                scheme="bearer",
                bearer_format="cf_<prefix>_<secret>",
                description="A key from `canvasflow user create NAME`, as 'Bearer cf_...'.",
            ),
        )
    ],
    security={"bearerAuth": []},
)


def responses(*problem_statuses: int, **ok: Any) -> Response:
    """A spectree Response: the success models as given (``HTTP_200=Model``, ``HTTP_204=None``)
    plus a problem+json response for each status in ``problem_statuses``."""
    problems = {f"HTTP_{code}": (Problem, HTTPStatus(code).phrase) for code in problem_statuses}
    return Response(**ok, **problems)


def accepts_yaml(description: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Document that a view also takes its body as raw YAML (``Content-Type: application/yaml``)."""

    def mark(view: Callable[..., Any]) -> Callable[..., Any]:
        view.openapi_yaml_body = description  # type: ignore[attr-defined]
        return view

    return mark


def openapi_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``app``'s /api routes (built once per app)."""
    cached = app.extensions.get("canvasflow_openapi")
    if cached is not None:
        return cached
    doc = copy.deepcopy(spec.spec)  # spectree builds it once, from the current app's routes
    doc["openapi"] = "3.1.0"  # pydantic v2 emits JSON Schema 2020-12, which is 3.1's dialect
    doc["paths"] = {
        path: ops
        for path, ops in doc["paths"].items()
        if path.startswith("/api/") and not path.startswith(DOCS_PATH)
    }
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            if is_public(path):
                operation["security"] = []
            takes_input = "requestBody" in operation or any(
                p.get("in") != "path" for p in operation.get("parameters", [])
            )
            if not takes_input:  # spectree documents a 422 on every operation
                operation.get("responses", {}).pop("422", None)
            if not operation.get("responses"):  # an undecorated view
                operation["responses"] = {"default": {"description": "see the summary"}}
            for response in operation["responses"].values():
                content = response.get("content", {})
                schema = content.get("application/json", {}).get("schema", {})
                if schema.get("$ref") == f"#/components/schemas/{_schema_name(Problem)}":
                    response["content"] = {PROBLEM_MIMETYPE: content["application/json"]}
    _add_yaml_bodies(app, doc)
    app.extensions["canvasflow_openapi"] = doc
    return doc


def _add_yaml_bodies(app: Flask, doc: dict[str, Any]) -> None:
    for rule in app.url_map.iter_rules():
        view = app.view_functions.get(rule.endpoint)
        description = getattr(view, "openapi_yaml_body", None)
        if not description:
            continue
        path, _ = spec.backend.parse_path(rule, None)
        for method in (rule.methods or set()) & {"POST", "PUT", "PATCH"}:
            operation = doc["paths"].get(path, {}).get(method.lower())
            if operation is None:
                continue
            body = operation.setdefault("requestBody", {"required": True, "content": {}})
            body["content"][YAML_MIMETYPE] = {
                "schema": {"type": "string", "description": description}
            }
