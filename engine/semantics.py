"""The DAG semantics of CONTRACT.md 1a as pure functions: taken edges, node input, context.

Kept apart from the database code so the rules can be tested with plain dictionaries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .graph import Edge, Workflow
from .states import STEP_TERMINAL, StepStatus


@dataclass(frozen=True)
class StepView:
    """What a node needs to know about another step of the same execution."""

    status: str
    output: Any = None


def truthy(value: Any) -> bool:
    """jq truthiness: only false and null are false."""
    return value is not None and value is not False


def edge_taken(edge: Edge, source_type: str, source: StepView | None) -> bool:
    """An edge is taken when its source succeeded and, out of a condition, `when` matches."""
    if source is None or source.status != StepStatus.SUCCEEDED.value:
        return False
    if source_type != "condition" or edge.when is None:
        return True
    result = (
        truthy((source.output or {}).get("result")) if isinstance(source.output, dict) else False
    )
    return (edge.when == "true") == result


def predecessors_done(workflow: Workflow, node_id: str, steps: Mapping[str, StepView]) -> bool:
    """Whether every predecessor finished (a node never runs before all of them)."""
    terminal = {s.value for s in STEP_TERMINAL}
    for e in workflow.in_edges.get(node_id, []):
        view = steps.get(e.source)
        if view is None or view.status not in terminal:
            return False
    return True


def taken_sources(workflow: Workflow, node_id: str, steps: Mapping[str, StepView]) -> list[str]:
    """Sources of the taken edges into ``node_id``, in edge declaration order."""
    nodes = workflow.node_map
    return [
        e.source
        for e in workflow.in_edges.get(node_id, [])
        if edge_taken(e, nodes[e.source].type, steps.get(e.source))
    ]


def node_input(
    workflow: Workflow,
    node_id: str,
    sources: list[str],
    steps: Mapping[str, StepView],
    execution_input: Any,
) -> Any:
    """One taken source gives its output as is; several give ``{source: output}``; joins always the object."""
    node = workflow.node_map[node_id]
    if node.type == "start":
        return execution_input
    if node.type == "join" or len(sources) > 1:
        return {s: steps[s].output for s in sources}
    return steps[sources[0]].output if sources else None


def expression_context(
    execution_id: str,
    workflow_id: str,
    execution_input: Any,
    steps: Mapping[str, StepView],
    node_in: Any,
) -> dict[str, Any]:
    """The document every DAG expression is evaluated against (CONTRACT.md 1a)."""
    return {
        "input": execution_input,
        "steps": {k: {"output": v.output, "status": v.status} for k, v in steps.items()},
        "node": {"input": node_in},
        "execution": {"id": execution_id, "workflow_id": workflow_id},
    }
