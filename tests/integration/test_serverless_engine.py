"""Serverless Workflow documents end to end on the embedded engine (SQLite, in-memory broker).

Each task shows up as a step named by its JSON pointer; the HTTP upstream is a real local
server; events come in through POST /api/events.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from app import create_app
from engine.serverless.errors import error_type
from models import Execution, StepExecution, session_scope
from tests.ctk.harness import PetstoreServer, SwEngine


@pytest.fixture(scope="module")
def petstore() -> Iterator[PetstoreServer]:
    server = PetstoreServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sw(
    tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path, petstore: PetstoreServer
) -> Iterator[SwEngine]:
    engine = SwEngine(
        tmp_path_factory.mktemp("sw-engine") / "data",
        template=sqlite_template,
        extra={"host_overrides": petstore.overrides(), "secrets": {"api": {"token": "s3cret"}}},
    )
    yield engine
    engine.stop()


def document(body: str, name: str = "it") -> dict[str, Any]:
    return {
        "document": {"dsl": "1.0.3", "namespace": "it", "name": name, "version": "1.0.0"},
        **yaml.safe_load(body),
    }


def steps(finished: Any) -> dict[str, tuple[str, str]]:
    return {s.node_id: (s.node_type, s.status) for s in finished.steps}


def test_nested_do_runs_each_task_as_a_step_named_by_its_pointer(sw: SwEngine) -> None:
    done = sw.run(
        document("""
do:
  - prepare:
      set: { colors: [] }
  - paint:
      do:
        - red: { set: { colors: '${ .colors + ["red"] }' } }
        - more:
            do:
              - green: { set: { colors: '${ .colors + ["green"] }' } }
""")
    )
    assert done.status == "succeeded", done.error
    assert done.output == {"colors": ["red", "green"]}
    rows = steps(done)
    assert rows["/do/0/prepare"] == ("sw_task", "succeeded")
    assert rows["/do/1/paint"] == ("sw_task", "succeeded")
    assert rows["/do/1/paint/do/0/red"] == ("sw:set", "succeeded")
    assert rows["/do/1/paint/do/1/more"] == ("sw:do", "succeeded")
    assert rows["/do/1/paint/do/1/more/do/0/green"] == ("sw:set", "succeeded")
    started = {s.node_id: s.started_at for s in done.steps}
    assert started["/do/1/paint/do/0/red"] <= started["/do/1/paint/do/1/more/do/0/green"]


def test_fork_outputs_are_in_declared_order_and_each_branch_is_a_step(sw: SwEngine) -> None:
    done = sw.run(
        document("""
do:
  - fan:
      fork:
        branches:
          - slow:
              do:
                - nap: { wait: { milliseconds: 200 } }
                - a: { set: { branch: a } }
          - fast: { set: { branch: b } }
""")
    )
    assert done.status == "succeeded", done.error
    assert done.output == [{"branch": "a"}, {"branch": "b"}]
    rows = steps(done)
    assert rows["/do/0/fan/fork/branches/0/slow/do/0/nap"] == ("sw:wait", "succeeded")
    assert rows["/do/0/fan/fork/branches/1/fast"] == ("sw:set", "succeeded")


def test_try_retries_a_flaky_upstream_then_succeeds(sw: SwEngine, petstore: PetstoreServer) -> None:
    petstore.flaky_calls, petstore.flaky_failures = 0, 2
    done = sw.run(
        document("""
do:
  - tryIt:
      try:
        - callFlaky:
            call: http
            with:
              method: get
              endpoint: https://petstore.swagger.io/flaky
      catch:
        errors:
          with:
            type: https://serverlessworkflow.io/spec/1.0.0/errors/communication
            status: 503
        retry:
          delay: { milliseconds: 50 }
          backoff: { exponential: {} }
          limit: { attempt: { count: 5 } }
""")
    )
    assert done.status == "succeeded", done.error
    assert done.output == {"ok": True, "calls": 3}
    call = next(s for s in done.steps if s.node_id == "/do/0/tryIt/try/0/callFlaky")
    assert (call.status, call.attempts) == ("succeeded", 3)
    assert [h["status"] for h in call.history] == ["failed", "failed", "succeeded"]
    assert call.history[0]["error"]["status"] == 503
    keys = [h[2].get("Idempotency-Key") for h in petstore.hits if h[1] == "/flaky"]
    assert len(set(keys)) == 3 and all(k and k.startswith(done.id) for k in keys)


def test_uncaught_error_fails_the_execution_with_the_standard_shape(sw: SwEngine) -> None:
    done = sw.run(
        document("""
do:
  - getPet:
      call: http
      with:
        method: get
        endpoint: https://petstore.swagger.io/v2/pet/404
""")
    )
    assert done.status == "failed"
    assert done.error["node_id"] == "/do/0/getPet"
    assert done.error["type"] == error_type("communication")
    assert done.error["details"] == {
        "type": error_type("communication"),
        "status": 404,
        "title": "Not Found",
        "detail": "GET https://petstore.swagger.io/v2/pet/404 answered 404",
        "instance": "/do/0/getPet",
    }


def test_unsupported_tasks_are_accepted_and_fault_with_a_configuration_error(sw: SwEngine) -> None:
    done = sw.run(
        document("""
do:
  - script:
      run:
        shell:
          command: echo hello
""")
    )
    assert done.status == "failed"
    assert done.error["details"]["type"] == error_type("configuration")
    assert "allow_run_tasks" in done.error["details"]["detail"]


def test_cancel_stops_a_running_workflow_mid_task(sw: SwEngine) -> None:
    execution_id = sw.start(
        sw.define(
            document("""
do:
  - loop:
      for: { in: '.items' }
      do:
        - nap: { wait: { milliseconds: 100 } }
  - never: { set: { reached: true } }
""")
        ),
        {"items": list(range(300))},
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with session_scope(sw.url) as session:
            nap = (
                session.query(StepExecution)
                .filter_by(execution_id=execution_id, node_id="/do/0/loop/do/0/nap")
                .one_or_none()
            )
            if nap is not None and nap.attempts >= 2:
                break
        time.sleep(0.05)
    began = time.monotonic()
    sw.cancel(execution_id)
    done = sw.wait(execution_id)
    assert done.status == "cancelled"
    time.sleep(1.0)  # the node notices within a cancel check, then stops writing
    with session_scope(sw.url) as session:
        rows = {
            s.node_id: s for s in session.query(StepExecution).filter_by(execution_id=execution_id)
        }
        attempts = rows["/do/0/loop/do/0/nap"].attempts
    time.sleep(0.5)
    with session_scope(sw.url) as session:
        later = (
            session.query(StepExecution)
            .filter_by(execution_id=execution_id, node_id="/do/0/loop/do/0/nap")
            .one()
        )
        assert later.attempts == attempts  # no more iterations after the cancel
    assert rows["/do/0/loop"].status == "cancelled"
    assert rows["/do/1/never"].status == "cancelled"
    assert attempts < 300 and time.monotonic() - began < 10


def test_listen_waits_for_an_event_posted_to_the_api(sw: SwEngine) -> None:
    execution_id = sw.start(
        sw.define(
            document("""
do:
  - waitForOrder:
      listen:
        to:
          one:
            with:
              type: com.example.order.paid
            correlate:
              order: { from: .data.order, expect: '${ .order }' }
  - done:
      set: { paid: '${ .[0].amount }' }
""")
        ),
        {"order": 42},
    )
    client = create_app(sw.settings).test_client()
    auth = {"Authorization": f"Bearer {sw.api_key}"}
    time.sleep(0.5)

    def post(order: int, amount: int) -> None:
        response = client.post(
            "/api/events",
            headers={**auth, "Content-Type": "application/cloudevents+json"},
            json={
                "specversion": "1.0",
                "id": f"e{order}",
                "source": "shop",
                "type": "com.example.order.paid",
                "data": {"order": order, "amount": amount},
            },
        )
        assert response.status_code == 202, response.get_json()

    post(7, 1)  # another order: must not match
    post(42, 99)
    done = sw.wait(execution_id)
    assert done.status == "succeeded", done.error
    assert done.output == {"paid": 99}


def test_run_workflow_starts_a_child_execution(sw: SwEngine) -> None:
    sw.define(
        document("do:\n  - double: { set: { n: '${ .n * 2 }' } }\n", name="doubler"), name="doubler"
    )
    done = sw.run(
        document("""
do:
  - child:
      run:
        workflow: { namespace: it, name: doubler, version: '1.0.0', input: { n: '${ .n }' } }
"""),
        {"n": 21},
    )
    assert done.status == "succeeded", done.error
    assert done.output == {"n": 42}
    with session_scope(sw.url) as session:
        child = session.query(Execution).filter_by(parent_execution_id=done.id).one()
        assert (child.parent_node_id, child.status) == ("/do/0/child", "succeeded")


def test_workflow_timeout_faults_with_the_timeout_error(sw: SwEngine) -> None:
    done = sw.run(
        document("""
timeout:
  after: { milliseconds: 300 }
do:
  - nap: { wait: PT10S }
""")
    )
    assert done.status == "failed"
    assert (done.error["details"]["type"], done.error["details"]["status"]) == (
        error_type("timeout"),
        408,
    )


def test_secrets_and_bearer_authentication_reach_the_upstream(
    sw: SwEngine, petstore: PetstoreServer
) -> None:
    done = sw.run(
        document("""
use:
  secrets: [api]
  authentications:
    apiToken:
      bearer: { use: api }
do:
  - echo:
      call: http
      with:
        method: get
        endpoint:
          uri: https://petstore.swagger.io/echo
          authentication: { use: apiToken }
      output: { as: '.headers.Authorization' }
""")
    )
    assert done.status == "succeeded", done.error
    assert done.output == "Bearer s3cret"


def test_many_executions_in_parallel(sw: SwEngine) -> None:
    workflow_id = sw.define(
        document("""
do:
  - fan:
      fork:
        branches:
          - a: { set: { a: '${ .n }' } }
          - b: { set: { b: '${ .n }' } }
""")
    )
    ids = [sw.start(workflow_id, {"n": i}) for i in range(10)]
    results = [sw.wait(i) for i in ids]
    assert [r.output for r in results] == [[{"a": i}, {"b": i}] for i in range(10)]
    assert threading.active_count() < 200
