"""Runtime expressions and schemas: what ``input.from``, ``output.as``, ``export.as``, ``if``,
``set`` and the ``input``/``output``/``export`` schemas do to data.

Expression failures become the standard expression error (400) and schema failures the
validation error (400), both located at the task's JSON pointer.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import jsonschema

from ..errors import ExpressionError
from ..expressions import evaluate, render, strip_expression
from .errors import WorkflowError

__all__ = ["expression", "template", "truthy", "validate_schema"]


def truthy(value: Any) -> bool:
    """jq truthiness: only false and null are false."""
    return value is not None and value is not False


def expression(value: Any, data: Any, variables: Mapping[str, Any], pointer: str) -> Any:
    """A field that *is* a runtime expression (``if``, ``input.from``, ``for.in``, ...).

    A string is jq, with or without ``${ }``; an object or array is a template whose
    ``${ }`` strings are evaluated.
    """
    try:
        if isinstance(value, str):
            return evaluate(strip_expression(value), data, variables)
        return render(value, data, variables)
    except ExpressionError as exc:
        raise WorkflowError.standard("expression", exc.detail, instance=pointer) from exc


def template(value: Any, data: Any, variables: Mapping[str, Any], pointer: str) -> Any:
    """A field that *may hold* runtime expressions: only ``${ }`` strings are evaluated."""
    try:
        return render(value, data, variables)
    except ExpressionError as exc:
        raise WorkflowError.standard("expression", exc.detail, instance=pointer) from exc


_validators: dict[str, Any] = {}
_validators_lock = threading.Lock()


def _validator(schema: dict[str, Any]) -> Any:
    key = json.dumps(schema, sort_keys=True, default=str)
    with _validators_lock:
        found = _validators.get(key)
    if found is None:
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        cls.check_schema(schema)
        found = cls(schema)
        with _validators_lock:
            _validators[key] = found
    return found


def validate_schema(schema: Any, value: Any, what: str, pointer: str) -> None:
    """Check ``value`` against a DSL ``schema`` (``{format, document}``); ValidationError if not.

    External schemas (``resource``) are not fetched: they raise a configuration error.
    """
    if not isinstance(schema, dict):
        return
    fmt = str(schema.get("format") or "json").split(":", 1)[0].lower()
    if fmt != "json":
        raise WorkflowError.standard(
            "configuration",
            f"{what} schema format {fmt!r} is not supported "
            "(Canvasflow validates JSON Schema only)",
            instance=pointer,
        )
    document = schema.get("document")
    if document is None:
        raise WorkflowError.standard(
            "configuration",
            f"{what} schema refers to an external resource; "
            "Canvasflow validates inline schema documents only",
            instance=pointer,
        )
    try:
        validator = _validator(document)
    except jsonschema.SchemaError as exc:
        raise WorkflowError.standard(
            "configuration", f"{what} schema is invalid: {exc.message}", instance=pointer
        ) from exc
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        shown = "; ".join(
            f"{'/' + '/'.join(map(str, e.absolute_path)) if e.absolute_path else '(root)'}: "
            f"{e.message}"
            for e in errors[:5]
        )
        raise WorkflowError.standard(
            "validation", f"{what} does not match its schema: {shown}", instance=pointer
        )
