"""Compiled workflow versions and execution headers, cached per process (they never change)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Execution, WorkflowVersion

from ..compiler import Plan, compile_plan
from ..definitions import load_definition
from ..errors import NotFound
from ..expressions import referenced_steps, referenced_steps_in_expression
from ..graph import Workflow


@dataclass(frozen=True)
class Compiled:
    workflow: Workflow
    plan: Plan
    # node -> step ids its expressions read (None = every step)
    needs: dict[str, frozenset[str] | None]


_cache: OrderedDict[tuple[str, int, bool], Compiled] = OrderedDict()


_cache_lock = threading.Lock()


def _needs(workflow: Workflow) -> dict[str, frozenset[str] | None]:
    """node -> the step ids its expressions read (None: it reads `.steps` as a whole)."""
    out: dict[str, frozenset[str] | None] = {}
    for n in workflow.nodes:
        refs: set[str] | None = set()
        for key, value in n.config.items():
            found = (
                referenced_steps_in_expression(value)
                if key in ("expression",) and isinstance(value, str)
                else referenced_steps(value)
            )
            if found is None:
                refs = None
                break
            refs |= found
        out[n.id] = None if refs is None else frozenset(refs)
    return out


def compile_version(definition: Any, chords: bool) -> Compiled:
    """Validate and compile a stored definition (pure; cached by the caller)."""
    wf = load_definition(definition)
    return Compiled(wf, compile_plan(wf, chords=chords), _needs(wf))


def load_compiled(session: Session, workflow_id: str, version: int, chords: bool) -> Compiled:
    """The compiled plan of one workflow version, cached per process (versions never change)."""
    key = (workflow_id, version, chords)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    definition = session.execute(
        select(WorkflowVersion.definition).where(
            WorkflowVersion.workflow_id == workflow_id, WorkflowVersion.version == version
        )
    ).scalar_one_or_none()
    if definition is None:
        raise NotFound(f"workflow {workflow_id} has no version {version}")
    compiled = compile_version(definition, chords)
    with _cache_lock:
        _cache[key] = compiled
        while len(_cache) > 256:
            _cache.popitem(last=False)
    return compiled


@dataclass(frozen=True)
class _Header:
    input: Any
    workflow_id: str
    workflow_version: int
    user_id: str


_headers: OrderedDict[str, _Header] = OrderedDict()


def _execution_header(session: Session, execution_id: str) -> _Header:
    """What never changes about an execution, cached per process (one query less per step)."""
    with _cache_lock:
        hit = _headers.get(execution_id)
        if hit is not None:
            _headers.move_to_end(execution_id)
            return hit
    row = session.execute(
        select(
            Execution.input, Execution.workflow_id, Execution.workflow_version, Execution.user_id
        ).where(Execution.id == execution_id)
    ).one()
    header = _Header(row.input, row.workflow_id, row.workflow_version, row.user_id)
    with _cache_lock:
        _headers[execution_id] = header
        while len(_headers) > 4096:
            _headers.popitem(last=False)
    return header


def node_type_of(session: Session, execution_id: str, node_id: str, chords: bool) -> str:
    """The type of a node of an execution (from the per-process caches after the first step)."""
    exe = _execution_header(session, execution_id)
    compiled = load_compiled(session, exe.workflow_id, exe.workflow_version, chords)
    return compiled.workflow.node_map[node_id].type


def cached_compiled(execution_id: str, chords: bool) -> Compiled | None:
    """The compiled version of an execution if this process has it cached (no query)."""
    with _cache_lock:
        header = _headers.get(execution_id)
        if header is None:
            return None
        return _cache.get((header.workflow_id, header.workflow_version, chords))


def prev_usable(compiled: Compiled, node_id: str, prev_node: str) -> bool:
    """Whether a step may run on its one predecessor's handed-over output alone."""
    wf = compiled.workflow
    needs = compiled.needs.get(node_id)
    return wf.predecessors(node_id) == [prev_node] and needs is not None and needs <= {prev_node}
