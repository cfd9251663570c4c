"""Serverless Workflow 1.0 at run time: the interpreter and what it is made of.

``runtime.Runner`` executes task definitions against a ``host.Host`` that performs
every side effect; the task kinds are in ``control`` and ``effects``;
``errors.WorkflowError`` is the spec's error shape.
"""

from .errors import Cancelled as Cancelled
from .errors import WorkflowError as WorkflowError
from .errors import error_type as error_type
from .host import Host as Host
from .runtime import Runner as Runner
from .scope import Outcome as Outcome
from .scope import Scope as Scope
from .tasklists import task_entries as task_entries
from .tasklists import task_kind as task_kind

__all__ = [
    "Cancelled",
    "Host",
    "Outcome",
    "Runner",
    "Scope",
    "WorkflowError",
    "error_type",
    "task_entries",
    "task_kind",
]
