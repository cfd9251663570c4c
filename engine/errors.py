"""The errors Canvasflow raises on purpose.

    CanvasflowError
     ├── InvalidWorkflow      the definition failed validation (.problems, each located)
     ├── InvalidInput         a request value is wrong (.problems, each located)
     ├── NotFound             no such row for this user
     ├── Conflict             the row is in a state that forbids the action
     ├── Unauthorized         no or wrong credentials
     ├── TooManyRequests      backpressure; .retry_after seconds
     ├── ServiceUnavailable   a dependency (database, broker) is down
     └── StepError            a node failed at run time (.retryable, .error_type)
          └── ExpressionError  a jq expression failed to compile or evaluate

`app/errors.py` maps each to one problem+json response; workers record StepError
in the step row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One located problem: ``pointer`` is a JSON pointer into the submitted document."""

    pointer: str
    message: str
    node_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"pointer": self.pointer, "message": self.message}
        if self.node_id is not None:
            out["node_id"] = self.node_id
        return out


class CanvasflowError(Exception):
    """Base class for every error Canvasflow raises on purpose."""

    status = 500
    title = "Internal error"

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class InvalidWorkflow(CanvasflowError):
    """The definition failed validation; ``problems`` lists each one with its location."""

    status = 422
    title = "Invalid workflow definition"

    def __init__(self, problems: list[Problem], detail: str = "") -> None:
        super().__init__(detail or f"{len(problems)} problem(s) in the workflow definition")
        self.problems = problems


class InvalidInput(CanvasflowError):
    """The request body or a parameter is wrong; ``problems`` lists every field."""

    status = 422
    title = "Invalid request"

    def __init__(self, problems: list[Problem], detail: str = "") -> None:
        super().__init__(detail or f"{len(problems)} problem(s) in the request")
        self.problems = problems


class BadRequest(CanvasflowError):
    status = 400
    title = "Bad request"


class NotFound(CanvasflowError):
    status = 404
    title = "Not found"


class Conflict(CanvasflowError):
    status = 409
    title = "Conflict"


class Unauthorized(CanvasflowError):
    status = 401
    title = "Unauthorized"


class TooManyRequests(CanvasflowError):
    status = 429
    title = "Too many requests"

    def __init__(self, detail: str = "", retry_after: int = 5) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


class ServiceUnavailable(CanvasflowError):
    status = 503
    title = "Service unavailable"


@dataclass
class StepFailure:
    """What a failed step records: a type, a message, and optional details."""

    type: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "message": self.message,
            **({"details": self.details} if self.details else {}),
        }


class StepError(CanvasflowError):
    """A node failed at run time. ``retryable`` tells the task whether to try again."""

    title = "Step failed"

    def __init__(
        self,
        message: str,
        *,
        error_type: str = "step_error",
        retryable: bool = False,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.retryable = retryable
        self.details = details or {}

    def failure(self) -> StepFailure:
        return StepFailure(self.error_type, self.detail, self.details)


class ExpressionError(StepError):
    """A jq expression failed to compile or to evaluate."""

    def __init__(self, message: str, expression: str = "") -> None:
        super().__init__(
            message,
            error_type="expression_error",
            retryable=False,
            details={"expression": expression} if expression else None,
        )
        self.expression = expression
