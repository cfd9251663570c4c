"""One entry point for both definition formats: a document in, a validated Workflow out."""

from __future__ import annotations

from typing import Any

import yaml

from .errors import InvalidWorkflow, Problem
from .graph import Workflow


def detect_format(document: Any) -> str:
    """``serverless`` for documents with ``document.dsl``, else ``dag``."""
    if (
        isinstance(document, dict)
        and isinstance(document.get("document"), dict)
        and "dsl" in document["document"]
    ):
        return "serverless"
    return "dag"


def parse_yaml(text: str) -> Any:
    """Parse a YAML (or JSON) body; a syntax error is an InvalidWorkflow at the root."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidWorkflow(
            [Problem("", f"malformed YAML{where}: {getattr(exc, 'problem', exc)}")]
        ) from exc


def load_definition(document: Any) -> Workflow:
    """Validate a DAG or Serverless Workflow document and return its graph.

    Raises InvalidWorkflow listing every problem at once.
    """
    if detect_format(document) == "serverless":
        from .formats.serverless import load_serverless

        return load_serverless(document)
    from .formats.dag import load_dag

    return load_dag(document)
