"""The Serverless Workflow conformance kit: every scenario of the CTK feature files.

Each scenario's workflow is stored as a workflow of its own and run by the real engine
in embedded mode (``harness.SwEngine``); task order assertions read the step rows.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from pytest_bdd import given, parsers, scenarios, then, when

from tests.services import services_required, shared_dir

from .harness import Finished, SwEngine

CTK = shared_dir() / "reference" / "serverless-workflow" / "ctk"
if not CTK.is_dir() or not list(CTK.glob("*.feature")):
    if services_required():  # CI: the conformance kit must run, not skip
        pytest.fail(f"the CTK feature files are not at {CTK}", pytrace=False)
    pytest.skip(f"the CTK feature files are not at {CTK}", allow_module_level=True)

scenarios(str(CTK))


class Run:
    """One scenario's state: definition, input, then the finished execution."""

    def __init__(self) -> None:
        self.definition: dict[str, Any] = {}
        self.input: Any = None
        self.result: Finished | None = None

    @property
    def done(self) -> Finished:
        assert self.result is not None, "the workflow was not executed"
        return self.result


@pytest.fixture
def run() -> Run:
    return Run()


def _yaml(text: str) -> Any:
    return yaml.safe_load(text)


def _path(value: Any, path: str) -> Any:
    for key in path.split("."):
        assert isinstance(value, dict) and key in value, f"no {path!r} in {value!r}"
        value = value[key]
    return value


# --------------------------------------------------------------------------- arrange


@given("a workflow with definition:")
def workflow_definition(run: Run, docstring: str) -> None:
    run.definition = _yaml(docstring)


@given("given the workflow input is:")
def workflow_input(run: Run, docstring: str) -> None:
    run.input = _yaml(docstring)


# --------------------------------------------------------------------------- act


@when("the workflow is executed")
def execute(run: Run, sw_engine: SwEngine) -> None:
    run.result = sw_engine.run(run.definition, run.input)


# --------------------------------------------------------------------------- assert


def _detail(done: Finished) -> str:
    return f"status {done.status}, output {done.output!r}, error {done.error!r}"


@then("the workflow should complete")
def completes(run: Run) -> None:
    assert run.done.status == "succeeded", _detail(run.done)


@then("the workflow should cancel")
def cancels(run: Run) -> None:
    assert run.done.status == "cancelled", _detail(run.done)


@then("the workflow should complete with output:")
def completes_with(run: Run, docstring: str) -> None:
    assert run.done.status == "succeeded", _detail(run.done)
    assert run.done.output == _yaml(docstring)


@then("the workflow should fault")
def faults(run: Run) -> None:
    assert run.done.status == "failed", _detail(run.done)


@then("the workflow should fault with error:")
def faults_with(run: Run, docstring: str) -> None:
    assert run.done.status == "failed", _detail(run.done)
    error = (run.done.error or {}).get("details") or {}
    expected = _yaml(docstring)
    assert {k: error.get(k) for k in expected} == expected, error


@then(parsers.re(r"the workflow output should have properties (?P<names>.+)"))
def has_properties(run: Run, names: str) -> None:
    assert run.done.status == "succeeded", _detail(run.done)
    for name in re.findall(r"'([^']*)'", names):
        _path(run.done.output, name)


@then(parsers.re(r"the workflow output should have a '(?P<name>[^']+)' property with value:"))
def has_value(run: Run, name: str, docstring: str) -> None:
    assert _path(run.done.output, name) == _yaml(docstring)


@then(
    parsers.re(
        r"the workflow output should have a '(?P<name>[^']+)' property containing "
        r"(?P<count>\d+) items"
    )
)
def has_items(run: Run, name: str, count: str) -> None:
    assert len(_path(run.done.output, name)) == int(count)


def _order(run: Run) -> list[str]:
    return [s.node_id.rsplit("/", 1)[-1] for s in run.done.ran()]


@then(parsers.re(r"(?P<task>\S+) should run first"))
def runs_first(run: Run, task: str) -> None:
    assert _order(run)[:1] == [task], _order(run)


@then(parsers.re(r"(?P<task>\S+) should run last"))
def runs_last(run: Run, task: str) -> None:
    assert _order(run)[-1:] == [task], _order(run)


@then(parsers.re(r"(?P<later>\S+) should run after (?P<earlier>\S+)"))
def runs_after(run: Run, later: str, earlier: str) -> None:
    order = _order(run)
    assert later in order and earlier in order and order.index(earlier) < order.index(later), order


@then(parsers.re(r"(?P<earlier>\S+) should run before (?P<later>\S+)"))
def runs_before(run: Run, earlier: str, later: str) -> None:
    runs_after(run, later, earlier)


def _task(run: Run, task: str) -> Any:
    step = run.done.step(task)
    assert step is not None, f"no step for {task}: {[s.node_id for s in run.done.steps]}"
    return step


@then(parsers.re(r"(?P<task>\S+) should complete with output:"))
def task_completes_with(run: Run, task: str, docstring: str) -> None:
    step = _task(run, task)
    assert step.status == "succeeded"
    output = step.output["output"] if step.node_type == "sw_task" else step.output
    assert output == _yaml(docstring)


@then(parsers.re(r"(?P<task>\S+) should complete"))
def task_completes(run: Run, task: str) -> None:
    assert _task(run, task).status == "succeeded"


@then(parsers.re(r"(?P<task>\S+) should fault with error:"))
def task_faults_with(run: Run, task: str, docstring: str) -> None:
    step = _task(run, task)
    assert step.status == "failed"
    error = step.error.get("details", step.error) if step.node_type == "sw_task" else step.error
    expected = _yaml(docstring)
    assert {k: error.get(k) for k in expected} == expected, error


@then(parsers.re(r"(?P<task>\S+) should fault"))
def task_faults(run: Run, task: str) -> None:
    assert _task(run, task).status == "failed"


@then(parsers.re(r"(?P<task>\S+) should cancel"))
def task_cancels(run: Run, task: str) -> None:
    assert _task(run, task).status == "cancelled"
