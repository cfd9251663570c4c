"""What a nested task list is given (``Scope``) and what it gives back (``Outcome``)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["SLEEP_SLICE", "Outcome", "Scope"]

# Sleeps and fork branches wake this often, in seconds, to look at the scope's cancel
# signals and deadline.
SLEEP_SLICE = 0.5


@dataclass(frozen=True)
class Scope:
    """What a nested task inherits: extra ``$variables``, a deadline, cancel signals."""

    variables: Mapping[str, Any] = field(default_factory=dict)
    deadline: float | None = None  # epoch seconds
    deadline_owner: str = "/"  # pointer of the task (or "/" the workflow) whose timeout it is
    cancels: tuple[threading.Event, ...] = ()

    def with_variables(self, **values: Any) -> Scope:
        return replace(self, variables={**self.variables, **values})


@dataclass(frozen=True)
class Outcome:
    output: Any
    end: bool = False  # a `then: end` (or top-level exit) asked the workflow to finish
