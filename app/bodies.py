"""Request bodies in: JSON or YAML text to plain JSON values, then pydantic models.

Everything that reaches a view or the database is plain JSON (str keys, no NaN, no
NUL, bounded depth), so a hostile body fails here with 400/415/422 and never as a 500
further down. Syntax errors are 400; well-formed values of the wrong shape are 422.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, TypeVar

from flask import Request, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from engine.definitions import parse_yaml
from engine.errors import BadRequest, InvalidInput, InvalidWorkflow, Problem

YAML_MIMETYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
MAX_DEPTH = 100
# Bounds YAML alias expansion ("billion laughs"); JSON bodies are bounded by their size.
MAX_VALUES = 1_000_000

M = TypeVar("M", bound=BaseModel)


class BoundedRequest(Request):
    """Flask's Request, but a chunked body past MAX_CONTENT_LENGTH is 413, not truncated.

    Werkzeug bounds a body without Content-Length by reading at most the limit, and then
    stops quietly: a truncated YAML document could still parse. Look one byte further.
    """

    def get_data(  # type: ignore[override]
        self,
        cache: bool = True,
        as_text: bool = False,
        parse_form_data: bool = False,
    ) -> Any:
        """The body, as Flask reads it, or 413 when more follows past the limit."""
        fresh = getattr(self, "_cached_data", None) is None
        data = super().get_data(cache=cache, as_text=False, parse_form_data=parse_form_data)
        limit = self.max_content_length
        if fresh and self.content_length is None and limit is not None and len(data) >= limit:
            if self.environ["wsgi.input"].read(1):
                raise RequestEntityTooLarge()
        return data.decode(errors="replace") if as_text else data


def escape_pointer_token(token: object) -> str:
    """One RFC 6901 reference token."""
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer(*tokens: object) -> str:
    """The JSON pointer to ``tokens`` (``pointer("nodes", 0)`` is ``/nodes/0``)."""
    return "".join("/" + escape_pointer_token(t) for t in tokens)


def is_json_mimetype(mimetype: str) -> bool:
    """``application/json`` and any ``+json`` type."""
    return mimetype == "application/json" or mimetype.endswith("+json")


def body_kind(allow_yaml: bool = False) -> str:
    """``json`` or ``yaml`` from Content-Type; a missing type means JSON, others are 415."""
    mimetype = request.mimetype
    if not mimetype or is_json_mimetype(mimetype):
        return "json"
    if allow_yaml and mimetype in YAML_MIMETYPES:
        return "yaml"
    accepted = "application/json" + (" or application/yaml" if allow_yaml else "")
    raise UnsupportedMediaType(f"Content-Type {mimetype!r} is not accepted here; send {accepted}.")


def body_text() -> str:
    """The raw body as text (413 past the size limit, 400 when not UTF-8 or empty)."""
    data = request.get_data(cache=True)
    if not data.strip():
        raise BadRequest("The request body is empty.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"The request body is not valid UTF-8 (byte {exc.start}).") from exc


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def parse_json(text: str) -> Any:
    """Parse JSON text; syntax errors are 400 naming the line and column."""
    try:
        document = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"Malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}."
        ) from exc
    except RecursionError as exc:
        raise BadRequest(f"Malformed JSON: nested deeper than {MAX_DEPTH} levels.") from exc
    except ValueError as exc:  # NaN/Infinity, numbers out of range, too many digits
        raise BadRequest(f"Malformed JSON: {exc}.") from exc
    return plain_json(document)


def parse_yaml_text(text: str) -> Any:
    """Parse YAML (a superset of JSON); syntax errors are 400, like malformed JSON."""
    try:
        document = parse_yaml(text)
    except InvalidWorkflow as exc:
        message = exc.problems[0].message if exc.problems else "malformed YAML"
        raise BadRequest(message[:1].upper() + message[1:] + ".") from exc
    except RecursionError as exc:
        raise BadRequest(f"Malformed YAML: nested deeper than {MAX_DEPTH} levels.") from exc
    return plain_json(document)


def json_body() -> Any:
    """The request's JSON body, any JSON value."""
    body_kind()
    return parse_json(body_text())


def json_object() -> dict[str, Any]:
    """The request's JSON body, which must be an object (else 422)."""
    document = json_body()
    require_object(document)
    return document


def require_object(document: Any, at: str = "") -> dict[str, Any]:
    """``document`` itself if it is a JSON object, else 422 at ``at``."""
    if not isinstance(document, dict):
        raise InvalidInput([Problem(at, f"expected a JSON object, got {json_type(document)}")])
    return document


def json_type(value: Any) -> str:
    """The JSON name of a value's type (``object``, ``array``, ``string``, ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _check_string(value: str, at: str, problems: list[Problem]) -> None:
    if "\x00" in value:
        problems.append(Problem(at, "NUL characters are not allowed"))
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        problems.append(Problem(at, "unpaired UTF-16 surrogate in string"))


def plain_json(document: Any) -> Any:
    """Check (and, for YAML, convert) a parsed document into plain, storable JSON.

    Dates become ISO strings and scalar keys strings; NaN, NUL characters, sets, binary
    values and nesting past MAX_DEPTH are 422 with their pointers. Iterative, so
    depth cannot blow the stack.
    """
    problems: list[Problem] = []
    seen = 0
    root: list[Any] = [None]
    # (value, container to write into, key in that container, pointer, depth)
    stack: list[tuple[Any, Any, Any, str, int]] = [(document, root, 0, "", 0)]
    while stack:
        value, parent, key, at, depth = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            raise InvalidInput([Problem("", f"the document holds more than {MAX_VALUES} values")])
        if depth > MAX_DEPTH:
            raise InvalidInput([Problem(at, f"nested deeper than {MAX_DEPTH} levels")])
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            parent[key] = out
            for k, v in value.items():
                if isinstance(k, bool) or k is None or isinstance(k, int | float):
                    k = json.dumps(k)
                elif isinstance(k, datetime | date):
                    k = k.isoformat()
                elif not isinstance(k, str):
                    problems.append(Problem(at, f"unsupported key type {type(k).__name__}"))
                    continue
                _check_string(k, at, problems)
                out[k] = None  # keep the key order; the value is filled in when popped
                stack.append((v, out, k, at + "/" + escape_pointer_token(k), depth + 1))
        elif isinstance(value, list):
            items: list[Any] = [None] * len(value)
            parent[key] = items
            for i, v in enumerate(value):
                stack.append((v, items, i, f"{at}/{i}", depth + 1))
        elif isinstance(value, str):
            _check_string(value, at, problems)
            parent[key] = value
        elif value is None or isinstance(value, bool | int):
            parent[key] = value
        elif isinstance(value, float):
            if not math.isfinite(value):
                problems.append(Problem(at, "NaN and infinite numbers are not JSON"))
            parent[key] = value
        elif isinstance(value, datetime | date):
            parent[key] = value.isoformat()
        else:
            problems.append(Problem(at, f"unsupported value of type {type(value).__name__}"))
        if len(problems) >= 50:
            break
    if problems:
        raise InvalidInput(problems)
    return root[0]


def problems_from_validation_error(err: ValidationError, prefix: str = "") -> list[Problem]:
    """One Problem per pydantic error, located by JSON pointer."""
    problems = []
    for item in err.errors(include_url=False, include_input=False):
        at = prefix + pointer(*item["loc"])
        message = "field required" if item["type"] == "missing" else item["msg"]
        problems.append(Problem(at, message))
    return problems


def validate_model(model: type[M], data: dict[str, Any], prefix: str = "") -> M:
    """``model`` built from ``data``, or InvalidInput listing every wrong field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(problems_from_validation_error(exc, prefix)) from exc


def query_problem(name: str, message: str) -> Problem:
    """A problem in query parameter ``name``; its pointer is ``/query/<name>``."""
    return Problem(pointer("query", name), message)


def query_arg(name: str) -> str | None:
    """A query parameter as text, or None; values with NUL characters are 422."""
    value = request.args.get(name)
    if value is not None and "\x00" in value:
        raise InvalidInput([query_problem(name, "NUL characters are not allowed")])
    return value


def choice_arg(name: str, allowed: Sequence[str]) -> str | None:
    """A query parameter that must be one of ``allowed`` (else 422), or None when absent."""
    value = query_arg(name)
    if not value:
        return None
    if value not in allowed:
        raise InvalidInput([query_problem(name, f"must be one of {', '.join(allowed)}")])
    return value
