"""webhook_response: the reply a synchronous webhook trigger sends back."""

from __future__ import annotations

from typing import Any

from engine.errors import StepError
from engine.expressions import render
from engine.graph import Node

from .env import HandlerEnv


def handle(node: Node, data: Any, context: dict[str, Any], env: HandlerEnv) -> Any:
    cfg = node.config
    status = render(cfg.get("status", 200), context)
    try:
        status = int(status)
    except (TypeError, ValueError) as exc:
        raise StepError(
            f"webhook_response status must be an integer, got {status!r}",
            error_type="invalid_config",
        ) from exc
    if not 100 <= status <= 599:
        raise StepError(
            f"webhook_response status {status} is not an HTTP status", error_type="invalid_config"
        )
    headers = render(cfg.get("headers") or {}, context)
    if not isinstance(headers, dict):
        raise StepError("webhook_response headers must be an object", error_type="invalid_config")
    body = render(cfg["body"], context) if "body" in cfg else data
    return {"status": status, "headers": {str(k): str(v) for k, v in headers.items()}, "body": body}
