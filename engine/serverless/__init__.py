"""Serverless Workflow 1.0 at run time: the interpreter and what it is made of.

``runtime.Runner`` executes task definitions against a ``runtime.Host`` that performs
every side effect; ``errors.WorkflowError`` is the spec's error shape.
"""

from .errors import Cancelled as Cancelled
from .errors import WorkflowError as WorkflowError
from .errors import error_type as error_type
from .runtime import Host as Host
from .runtime import Outcome as Outcome
from .runtime import Runner as Runner
from .runtime import Scope as Scope
from .runtime import task_entries as task_entries
from .runtime import task_kind as task_kind

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
