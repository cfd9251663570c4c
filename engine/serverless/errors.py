"""The standard Serverless Workflow errors, and the cancellation the interpreter raises.

A ``WorkflowError`` is an RFC 7807 problem: ``type``, ``status``, ``title``, ``detail`` and
``instance`` (the JSON pointer of the task that raised it). ``catch.errors.with`` filters
compare against ``to_dict()``.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["ERROR_TYPES", "Cancelled", "WorkflowError", "error_type", "same_type"]

BASE = "https://serverlessworkflow.io/spec/1.0.0/errors/"
ERROR_TYPES = {
    "configuration": (400, "Configuration Error"),
    "validation": (400, "Validation Error"),
    "expression": (400, "Expression Error"),
    "authentication": (401, "Authentication Error"),
    "authorization": (403, "Authorization Error"),
    "timeout": (408, "Timeout"),
    "communication": (500, "Communication Error"),
    "runtime": (500, "Runtime Error"),
}
# Older drafts and the CTK write ``https://serverlessworkflow.io/dsl/errors/types/<kind>``;
# both spellings name the same standard type.
_STANDARD = re.compile(
    r"^https?://serverlessworkflow\.io(?:\.io)?/(?:spec/[^/]+/errors|dsl/errors/types)/"
    r"(?P<kind>[a-z]+)$"
)


def error_type(kind: str) -> str:
    """The URI of a standard error type (``communication`` -> ``.../errors/communication``)."""
    return BASE + kind


def _canonical(uri: Any) -> Any:
    match = _STANDARD.match(uri) if isinstance(uri, str) else None
    return error_type(match["kind"]) if match else uri


def same_type(a: Any, b: Any) -> bool:
    """Whether two error type URIs name the same type, spelling variants included."""
    return _canonical(a) == _canonical(b)


class WorkflowError(Exception):
    """A Serverless Workflow error: faults the task unless a ``try`` catches it."""

    def __init__(
        self,
        type: str,
        status: int,
        detail: str | None = None,
        *,
        title: str | None = None,
        instance: str | None = None,
    ) -> None:
        super().__init__(detail or title or type)
        self.type = type
        self.status = status
        self.title = title
        self.detail = detail
        self.instance = instance

    @classmethod
    def standard(
        cls,
        kind: str,
        detail: str,
        *,
        instance: str | None = None,
        status: int | None = None,
        title: str | None = None,
    ) -> WorkflowError:
        """One of the standard errors, with its default status and title."""
        default_status, default_title = ERROR_TYPES[kind]
        return cls(
            error_type(kind),
            status or default_status,
            detail,
            title=title or default_title,
            instance=instance,
        )

    def located(self, instance: str) -> WorkflowError:
        """Set the instance if nothing closer to the cause set it first."""
        if not self.instance:
            self.instance = instance
        return self

    def to_dict(self) -> dict[str, Any]:
        """The problem as plain JSON; absent members are left out."""
        out: dict[str, Any] = {"type": self.type, "status": self.status}
        for key in ("title", "detail", "instance"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    def matches(self, filter: dict[str, Any] | None) -> bool:
        """Whether every property of a ``catch.errors.with`` filter matches this error."""
        for key, wanted in (filter or {}).items():
            actual = self.to_dict().get(key)
            if key == "type":
                if not same_type(actual, wanted):
                    return False
            elif key == "instance":
                if not (
                    isinstance(actual, str)
                    and isinstance(wanted, str)
                    and (actual == wanted or actual.startswith(wanted.rstrip("/") + "/"))
                ):
                    return False
            elif key == "status":
                try:
                    if int(actual) != int(wanted):
                        return False
                except (TypeError, ValueError):
                    return False
            elif actual != wanted:
                return False
        return True

    @classmethod
    def from_dict(cls, data: dict[str, Any], instance: str | None = None) -> WorkflowError:
        """An error from its problem form (``raise`` definitions, sub-workflow faults)."""
        status = data.get("status")
        try:
            status = int(status) if status is not None else 500
        except (TypeError, ValueError):
            status = 500
        return cls(
            str(data.get("type") or error_type("runtime")),
            status,
            data.get("detail"),
            title=data.get("title"),
            instance=data.get("instance") or instance,
        )


class Cancelled(Exception):
    """The execution was cancelled, or a competing fork branch lost: stop cooperatively."""
