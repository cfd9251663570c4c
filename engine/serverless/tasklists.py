"""Task lists as a document writes them: ``- name: task`` items, each task's kind, its pointer."""

from __future__ import annotations

from typing import Any

__all__ = ["KINDS", "escape", "task_entries", "task_kind"]

KINDS = (
    "for",
    "try",
    "fork",
    "switch",
    "listen",
    "emit",
    "raise",
    "run",
    "set",
    "wait",
    "call",
    "do",
)


def task_kind(task: Any) -> str:
    """``call``, ``set``, ``for``, ... (``for`` and ``try`` carry a ``do``/``catch`` too)."""
    if isinstance(task, dict):
        for kind in KINDS:
            if kind in task:
                return kind
    return "unknown"


def escape(name: str) -> str:
    """A task name as one JSON pointer segment (``~`` and ``/`` escaped)."""
    return name.replace("~", "~0").replace("/", "~1")


def task_entries(tasks: Any, pointer: str) -> list[tuple[str, dict[str, Any], str]]:
    """(name, task, pointer) for every ``- name: task`` item of a task list."""
    out = []
    for index, item in enumerate(tasks if isinstance(tasks, list) else []):
        if isinstance(item, dict) and len(item) == 1:
            [(name, task)] = item.items()
            out.append(
                (
                    str(name),
                    task if isinstance(task, dict) else {},
                    f"{pointer}/{index}/{escape(str(name))}",
                )
            )
    return out
