"""Node handlers: plain functions ``handle(node, input, context, env) -> output``.

They know nothing about Celery or the database; a handler that fails raises StepError
(``retryable`` decides whether the task tries again).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.graph import Node

from . import action, basic, delay, webhook_response
from .env import HandlerEnv

Handler = Callable[[Node, Any, dict[str, Any], HandlerEnv], Any]

HANDLERS: dict[str, Handler] = {
    "start": basic.passthrough,
    "fork": basic.passthrough,
    "join": basic.passthrough,
    "end": basic.end,
    "condition": basic.condition,
    "transform": basic.transform,
    "action": action.handle,
    "webhook_response": webhook_response.handle,
    "delay": delay.handle,
}


def get(node_type: str) -> Handler:
    """The handler for a node type (Serverless Workflow tasks register theirs lazily)."""
    handler = HANDLERS.get(node_type)
    if handler is None and node_type == "sw_task":
        from .serverless import handle as sw_handle

        HANDLERS["sw_task"] = sw_handle
        handler = sw_handle
    if handler is None:
        raise KeyError(node_type)
    return handler


__all__ = ["HANDLERS", "Handler", "HandlerEnv", "get"]
