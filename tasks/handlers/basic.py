"""start, fork, join, end, condition and transform: pure data handlers."""

from __future__ import annotations

from typing import Any

from engine.expressions import evaluate, is_expression_string, render
from engine.graph import Node
from engine.semantics import truthy

from .env import HandlerEnv


def passthrough(node: Node, data: Any, context: dict[str, Any], env: HandlerEnv) -> Any:
    """start gives the execution input, fork its input, join the ``{source: output}`` object."""
    return data


def _expression_or_template(value: Any, context: dict[str, Any]) -> Any:
    # A bare string is a jq program; objects, arrays and "${ }" strings are templates.
    if isinstance(value, str) and not is_expression_string(value) and "${" not in value:
        return evaluate(value, context)
    return render(value, context)


def end(node: Node, data: Any, context: dict[str, Any], env: HandlerEnv) -> Any:
    if "output" in node.config:
        return _expression_or_template(node.config["output"], context)
    return data


def condition(node: Node, data: Any, context: dict[str, Any], env: HandlerEnv) -> Any:
    return {"result": truthy(evaluate(node.config["expression"], context))}


def transform(node: Node, data: Any, context: dict[str, Any], env: HandlerEnv) -> Any:
    if "expression" in node.config:
        return evaluate(node.config["expression"], context)
    return render(node.config.get("mapping", {}), context)
