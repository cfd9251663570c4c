"""The Serverless Workflow interpreter with a fake host: no database, no broker, no network."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from engine.serverless import Cancelled, Runner, WorkflowError
from engine.serverless.durations import to_seconds
from engine.serverless.errors import error_type, same_type
from engine.serverless.uri import expand

COMMUNICATION = error_type("communication")


class FakeHost:
    """Records every side effect; HTTP answers come from ``routes``; time only moves on sleep."""

    allow_run = False

    def __init__(
        self,
        routes: dict[tuple[str, str], Any] | None = None,
        events: list[Any] | None = None,
        secrets: dict[str, Any] | None = None,
    ) -> None:
        self.routes = routes or {}
        self.requests: list[dict[str, Any]] = []
        self.steps: list[tuple[str, str, str]] = []
        self.outputs: dict[str, Any] = {}
        self.emitted: list[dict[str, Any]] = []
        self.pending_events = list(events or [])
        self.secrets = secrets or {}
        self.clock = datetime(2025, 1, 1, tzinfo=UTC)
        self.slept = 0.0
        self.cancel_after_steps: int | None = None
        self.workflows: list[tuple[str, str, str, Any]] = []
        self.lock = threading.Lock()

    def now(self) -> datetime:
        return self.clock

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.slept += seconds
            self.clock += timedelta(seconds=seconds)

    def cancelled(self) -> bool:
        return self.cancel_after_steps is not None and len(self.steps) >= self.cancel_after_steps

    def record_step(
        self,
        pointer: str,
        kind: str,
        status: str,
        input: Any,
        output: Any,
        error: dict[str, Any] | None,
        started: datetime,
        finished: datetime | None,
    ) -> None:
        with self.lock:
            self.steps.append((pointer, kind, status))
            if status == "succeeded":
                self.outputs[pointer] = output

    def http(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        self.requests.append(request)
        key = (request["method"].lower(), request["uri"])
        answer = self.routes.get(key)
        if callable(answer):
            answer = answer(request)
        if answer is None:
            return {
                "statusCode": 404,
                "headers": {"Content-Type": "application/json"},
                "content": b'{"message": "not found"}',
            }
        status, body = answer if isinstance(answer, tuple) else (200, answer)
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        ctype = "application/octet-stream" if isinstance(body, bytes) else "application/json"
        return {"statusCode": status, "headers": {"Content-Type": ctype}, "content": raw}

    def emit(self, event: dict[str, Any]) -> None:
        self.emitted.append(event)

    def listen_cursor(self, pointer: str) -> Any:
        return 0

    def events(self, cursor: Any) -> tuple[list[dict[str, Any]], Any]:
        fresh = self.pending_events[cursor:]
        return fresh, cursor + len(fresh)

    def run_workflow(
        self, namespace: str, name: str, version: str, input: Any, wait: bool, pointer: str
    ) -> Any:
        self.workflows.append((namespace, name, version, input))
        if name == "broken":
            raise WorkflowError.standard("runtime", "child failed")
        return {"child": name, "got": input}

    def run_process(self, kind: str, spec: dict[str, Any], pointer: str) -> dict[str, Any]:
        return {"code": 0, "stdout": f"ran {spec.get('command')}", "stderr": ""}


def doc(text: str) -> dict[str, Any]:
    body = yaml.safe_load(text)
    return {
        "document": {"dsl": "1.0.0", "namespace": "test", "name": "t", "version": "1.0.0"},
        **body,
    }


def run(
    text: str, data: Any = None, host: FakeHost | None = None, **kwargs: Any
) -> tuple[Any, FakeHost]:
    """Run a whole document as the engine would: input, root list, output."""
    host = host or FakeHost()
    document = doc(text)
    runner = Runner(document, host, workflow_input=data, **kwargs)
    scope = runner.workflow_scope()
    outcome = runner.run_list(document["do"], "/do", runner.workflow_input(data), scope)
    return runner.workflow_output(outcome.output), host


def fault(text: str, data: Any = None, host: FakeHost | None = None) -> WorkflowError:
    with pytest.raises(WorkflowError) as caught:
        run(text, data, host)
    return caught.value


# --------------------------------------------------------------------------- set, do, data flow


def test_set_renders_expressions_against_the_input() -> None:
    out, _ = run(
        """
do:
  - shape:
      set:
        shape: circle
        size: ${ .size }
        label: "size ${ .size }"
""",
        {"size": 6},
    )
    assert out == {"shape": "circle", "size": 6, "label": "size 6"}


def test_nested_do_passes_each_output_to_the_next_task() -> None:
    out, host = run("""
do:
  - outer:
      do:
        - red:
            set: { colors: '${ .colors + ["red"] }' }
        - inner:
            do:
              - green:
                  set: { colors: '${ .colors + ["green"] }' }
""")
    assert out == {"colors": ["red", "green"]}
    assert [s for s in host.steps if s[2] == "succeeded"][0][0] == "/do/0/outer/do/0/red"
    assert ("/do/0/outer/do/1/inner/do/0/green", "sw:set", "succeeded") in host.steps


def test_input_from_output_as_and_export_as_with_arguments() -> None:
    out, _ = run(
        """
input:
  from: .payload
do:
  - first:
      input:
        from: .user
      set:
        name: ${ .name }
        raw: ${ $task.input.user.name }
        ref: ${ $task.reference }
      output:
        as: '. + { seen: $input.name }'
      export:
        as: '$context + { first: $output.name }'
  - second:
      set:
        context: ${ $context }
        workflow_input: ${ $workflow.input.payload.user.name }
        runtime: ${ $runtime.name }
output:
  as: '{ result: . }'
""",
        {"payload": {"user": {"name": "ada"}}},
    )
    assert out == {
        "result": {"context": {"first": "ada"}, "workflow_input": "ada", "runtime": "Canvasflow"}
    }


def test_task_if_false_skips_and_passes_the_raw_input_on() -> None:
    out, host = run(
        """
do:
  - maybe:
      if: .go
      set: { changed: true }
  - after:
      set: { go: '${ .go }', done: true }
""",
        {"go": False},
    )
    assert out == {"go": False, "done": True}
    assert ("/do/0/maybe", "sw:set", "skipped") in host.steps


def test_input_and_output_schemas_fault_with_validation_errors() -> None:
    schema = """
input:
  schema:
    format: json
    document: { type: object, required: [name] }
do:
  - t:
      set: { x: 1 }
      output:
        schema:
          format: json
          document: { type: object, required: [y] }
"""
    error = fault(schema, {})
    assert (error.type, error.status, error.instance) == (
        error_type("validation"),
        400,
        "/input/schema",
    )
    error = fault(schema, {"name": "x"})
    assert (error.type, error.instance) == (error_type("validation"), "/do/0/t")
    assert "/do/0/t/output/schema" in (error.detail or "")


def test_expression_errors_are_standard_and_located() -> None:
    error = fault(
        """
do:
  - outer:
      do:
        - bad:
            set: { x: '${ .a | error("boom") }' }
""",
        {"a": 1},
    )
    assert error.type == error_type("expression")
    assert error.status == 400
    assert error.instance == "/do/0/outer/do/0/bad"


# --------------------------------------------------------------------------- flow


def test_flow_directives_jump_by_name_and_end() -> None:
    out, host = run("""
do:
  - red:
      set: { colors: '${ .colors + ["red"] }' }
      then: green
  - blue:
      set: { colors: '${ .colors + ["blue"] }' }
      then: end
  - green:
      set: { colors: '${ .colors + ["green"] }' }
      then: blue
""")
    assert out == {"colors": ["red", "green", "blue"]}
    ran = [p for p, _, s in host.steps if s == "succeeded"]
    assert ran == ["/do/0/red", "/do/2/green", "/do/1/blue"]


def test_exit_leaves_only_the_current_list() -> None:
    out, _ = run("""
do:
  - outer:
      do:
        - a:
            set: { a: 1 }
            then: exit
        - b:
            set: { b: 1 }
  - after:
      set: '${ . + { after: true } }'
""")
    assert out == {"a": 1, "after": True}


def test_end_inside_a_nested_list_ends_the_workflow() -> None:
    out, _ = run("""
do:
  - outer:
      do:
        - a:
            set: { a: 1 }
            then: end
  - never:
      set: { never: true }
""")
    assert out == {"a": 1}


def test_backward_jump_loops_until_a_switch_leaves() -> None:
    out, _ = run("""
do:
  - inc:
      set: { n: '${ (.n // 0) + 1 }' }
  - check:
      switch:
        - more:
            when: .n < 3
            then: inc
        - done:
            then: exit
""")
    assert out == {"n": 3}


@pytest.mark.parametrize(
    ("color", "expected"), [("red", {"colors": ["red"]}), ("yellow", {"color": "yellow"})]
)
def test_switch_takes_the_first_matching_case_or_the_task_then(color: str, expected: Any) -> None:
    out, _ = run(
        """
do:
  - pick:
      switch:
        - red:
            when: '.color == "red"'
            then: setRed
      then: end
  - setRed:
      set: { colors: '${ .colors + ["red"] }' }
""",
        {"color": color},
    )
    assert out == expected


# --------------------------------------------------------------------------- for, fork


def test_for_binds_item_and_index_and_chains_iterations() -> None:
    out, _ = run(
        """
do:
  - loop:
      for: { each: color, in: .colors, at: i }
      do:
        - mark:
            set:
              seen: '${ (.seen // []) + [ { c: $color, i: $i } ] }'
""",
        {"colors": ["red", "green"]},
    )
    assert out == {"seen": [{"c": "red", "i": 0}, {"c": "green", "i": 1}]}


def test_for_defaults_and_while_stops_early() -> None:
    out, _ = run(
        """
do:
  - loop:
      for: { in: .items }
      while: (.total // 0) < 5
      do:
        - add:
            set: { total: '${ (.total // 0) + $item }', last: '${ $index }' }
""",
        {"items": [2, 2, 2, 2]},
    )
    assert out == {"total": 6, "last": 2}


def test_fork_returns_branch_outputs_in_declared_order() -> None:
    out, _ = run("""
do:
  - both:
      fork:
        branches:
          - slow:
              do:
                - nap: { wait: { milliseconds: 5 } }
                - one: { set: { branch: 1 } }
          - fast:
              set: { branch: 2 }
""")
    assert out == [{"branch": 1}, {"branch": 2}]


def test_fork_compete_returns_one_branch_and_cancels_the_others() -> None:
    host = FakeHost()
    out, _ = run(
        """
do:
  - race:
      fork:
        compete: true
        branches:
          - winner:
              set: { won: fast }
          - loser:
              do:
                - nap: { wait: PT1H }
                - late: { set: { won: slow } }
""",
        host=host,
    )
    assert out == {"won": "fast"}
    assert ("/do/0/race/fork/branches/1/loser", "sw:do", "succeeded") not in host.steps
    assert not any(p.endswith("/late") for p, _, _ in host.steps)


def test_fork_branch_error_faults_the_fork() -> None:
    error = fault("""
do:
  - both:
      fork:
        branches:
          - ok: { set: { a: 1 } }
          - bad:
              raise:
                error: { type: https://example.com/bad, status: 418 }
""")
    assert (error.type, error.status, error.instance) == (
        "https://example.com/bad",
        418,
        "/do/0/both/fork/branches/1/bad",
    )


# --------------------------------------------------------------------------- raise, try


def test_raise_inline_error_with_instance_and_expressions() -> None:
    error = fault(
        """
do:
  - fail:
      raise:
        error:
          type: https://example.com/errors/compliance
          status: 400
          title: Compliance Error
          detail: ${ "bad " + .what }
""",
        {"what": "thing"},
    )
    assert error.to_dict() == {
        "type": "https://example.com/errors/compliance",
        "status": 400,
        "title": "Compliance Error",
        "detail": "bad thing",
        "instance": "/do/0/fail",
    }


def test_raise_reusable_error() -> None:
    error = fault("""
use:
  errors:
    notAllowed:
      type: https://serverlessworkflow.io/spec/1.0.0/errors/authorization
      status: 403
do:
  - fail:
      raise:
        error: notAllowed
""")
    assert (error.status, error.instance) == (403, "/do/0/fail")


TRY_404 = """
do:
  - tryGetPet:
      try:
        - getPet:
            call: http
            with:
              method: get
              endpoint: https://pets.test/pet/{petName}
      catch:
        errors:
          with:
            type: https://serverlessworkflow.io/dsl/errors/types/communication
            status: %s
        as: err
        do:
          - setError:
              set:
                error: ${ $err }
"""


def test_try_catches_a_filtered_error_and_runs_the_handler() -> None:
    out, _ = run(TRY_404 % 404, {"petName": "Milou"})
    assert out["error"]["instance"] == "/do/0/tryGetPet/try/0/getPet"
    assert out["error"]["status"] == 404
    assert same_type(out["error"]["type"], COMMUNICATION)


def test_try_lets_unmatched_errors_through() -> None:
    error = fault(TRY_404 % 503, {"petName": "Milou"})
    assert (error.status, error.instance) == (404, "/do/0/tryGetPet/try/0/getPet")


def test_catch_when_and_except_when() -> None:
    base = """
do:
  - t:
      try:
        - r:
            raise:
              error: { type: https://example.com/e, status: 500 }
      catch:
        %s
        do:
          - handled: { set: { handled: true } }
"""
    assert run(base % "when: $error.status == 500")[0] == {"handled": True}
    with pytest.raises(WorkflowError):
        run(base % "exceptWhen: $error.status == 500")


def test_retry_with_exponential_backoff_until_success() -> None:
    calls = {"n": 0}

    def flaky(request: dict[str, Any]) -> Any:
        calls["n"] += 1
        return (503, {"no": True}) if calls["n"] < 3 else (200, {"ok": calls["n"]})

    host = FakeHost({("get", "https://api.test/flaky"): flaky})
    out, _ = run(
        """
do:
  - t:
      try:
        - call1:
            call: http
            with: { method: get, endpoint: https://api.test/flaky }
      catch:
        errors:
          with: { status: 503 }
        retry:
          delay: { seconds: 1 }
          backoff: { exponential: {} }
          limit:
            attempt: { count: 5 }
""",
        host=host,
    )
    assert out == {"ok": 3}
    assert host.slept == pytest.approx(1 + 2)


def test_retry_stops_at_the_attempt_limit_and_reusable_policy() -> None:
    host = FakeHost({("get", "https://api.test/down"): (503, {})})
    out, _ = run(
        """
use:
  retries:
    twice:
      delay: PT2S
      backoff: { linear: {} }
      jitter: { from: { seconds: 0 }, to: { seconds: 0 } }
      limit: { attempt: { count: 2 } }
do:
  - t:
      try:
        - c:
            call: http
            with: { method: get, endpoint: https://api.test/down }
      catch:
        retry: twice
        do:
          - gaveUp: { set: { gaveUp: true } }
""",
        host=host,
    )
    assert out == {"gaveUp": True}
    assert len(host.requests) == 3
    assert host.slept == pytest.approx(2 + 4)


# --------------------------------------------------------------------------- wait, timeouts


def test_wait_accepts_iso_and_inline_durations() -> None:
    _, host = run("""
do:
  - a: { wait: PT1M30S }
  - b: { wait: { seconds: 2, milliseconds: 500 } }
""")
    assert host.slept == pytest.approx(92.5)


def test_task_timeout_faults_with_the_timeout_error() -> None:
    error = fault("""
do:
  - slow:
      timeout:
        after: { seconds: 5 }
      do:
        - nap: { wait: PT1M }
""")
    assert (error.type, error.status, error.instance) == (error_type("timeout"), 408, "/do/0/slow")


def test_workflow_timeout_and_reusable_timeouts() -> None:
    error = fault("""
use:
  timeouts:
    short: { after: PT10S }
timeout: short
do:
  - nap: { wait: PT1M }
""")
    assert (error.type, error.instance) == (error_type("timeout"), "/")


def test_long_waits_are_refused_past_the_cap() -> None:
    with pytest.raises(WorkflowError) as caught:
        run("do:\n  - nap: { wait: P2D }\n", max_wait_seconds=3600)
    assert caught.value.type == error_type("configuration")


def test_durations() -> None:
    assert to_seconds("P1DT2H3M4.5S") == 86400 + 7200 + 180 + 4.5
    assert to_seconds({"minutes": 1, "milliseconds": 250}) == 60.25
    with pytest.raises(ValueError):
        to_seconds("P1Y")


# --------------------------------------------------------------------------- call http / openapi


def test_call_http_content_with_uri_template_query_headers_and_body() -> None:
    host = FakeHost({("post", "https://api.test/pets/a%20b?limit=2&tag=x&tag=y"): {"ok": True}})
    out, _ = run(
        """
do:
  - c:
      call: http
      with:
        method: post
        endpoint: https://api.test/pets/{name}
        headers: { X-Trace: '${ .trace }' }
        query: { limit: 2, tag: [x, y] }
        body: { name: '${ .name }' }
""",
        {"name": "a b", "trace": "t1"},
        host,
    )
    assert out == {"ok": True}
    [request] = host.requests
    assert request["headers"] == {"X-Trace": "t1"}
    assert request["body"] == {"name": "a b"}


def test_call_http_response_and_raw_outputs_and_expression_endpoint() -> None:
    host = FakeHost(
        {
            ("get", "https://api.test/pet/1"): {"id": 1},
            ("get", "https://api.test/blob"): b"\x00\x01",
        }
    )
    out, _ = run(
        """
do:
  - r:
      call: http
      with:
        method: get
        endpoint: ${ "https://api.test/pet/" + (.id | tostring) }
        output: response
  - raw:
      call: http
      with: { method: get, endpoint: https://api.test/blob, output: raw }
      output:
        as: '{ raw: ., before: $task.input.statusCode }'
""",
        {"id": 1},
        host,
    )
    assert out == {"raw": base64.b64encode(b"\x00\x01").decode(), "before": 200}
    assert host.outputs["/do/0/r"]["content"] == {"id": 1}
    assert host.outputs["/do/0/r"]["request"]["uri"] == "https://api.test/pet/1"


def test_call_http_basic_bearer_and_named_authentications_with_secrets() -> None:
    host = FakeHost(
        {
            ("get", "https://api.test/a"): {},
            ("get", "https://api.test/b"): {},
            ("get", "https://api.test/c"): {},
        },
        secrets={"creds": {"username": "u", "password": "p"}},
    )
    run(
        """
use:
  authentications:
    fromSecret:
      basic: { use: creds }
do:
  - a:
      call: http
      with:
        method: get
        endpoint:
          uri: https://api.test/a
          authentication: { basic: { username: '${ .u }', password: pw } }
  - b:
      call: http
      with:
        method: get
        endpoint: { uri: https://api.test/b, authentication: { bearer: { token: tok } } }
  - c:
      call: http
      with:
        method: get
        endpoint: { uri: https://api.test/c, authentication: { use: fromSecret } }
""",
        {"u": "ada"},
        host,
    )
    auth = [r["headers"]["Authorization"] for r in host.requests]
    assert auth == [
        "Basic " + base64.b64encode(b"ada:pw").decode(),
        "Bearer tok",
        "Basic " + base64.b64encode(b"u:p").decode(),
    ]


def test_http_error_status_is_a_communication_error() -> None:
    error = fault(
        "do:\n  - c: { call: http, with: { method: get, endpoint: https://api.test/none } }\n"
    )
    assert (error.type, error.status, error.title, error.instance) == (
        COMMUNICATION,
        404,
        "Not Found",
        "/do/0/c",
    )


SWAGGER = {
    "swagger": "2.0",
    "host": "pets.test",
    "basePath": "/v2",
    "schemes": ["https"],
    "paths": {
        "/pet/{petId}": {
            "get": {"operationId": "getPetById", "parameters": [{"name": "petId", "in": "path"}]}
        },
        "/pet/findByStatus": {
            "get": {"operationId": "find", "parameters": [{"name": "status", "in": "query"}]}
        },
        "/pet": {"post": {"operationId": "addPet", "parameters": [{"name": "body", "in": "body"}]}},
    },
}


def test_call_openapi_builds_path_query_and_body_from_the_document() -> None:
    host = FakeHost(
        {
            ("get", "https://pets.test/v2/swagger.json"): SWAGGER,
            ("get", "https://pets.test/v2/pet/7"): {"id": 7},
            ("get", "https://pets.test/v2/pet/findByStatus?status=available"): [{"id": 1}],
            ("post", "https://pets.test/v2/pet"): {"created": True},
        }
    )
    out, _ = run(
        """
do:
  - one:
      call: openapi
      with:
        document: { endpoint: https://pets.test/v2/swagger.json }
        operationId: getPetById
        parameters: { petId: 7 }
        output: response
      output: { as: .content.id }
  - many:
      call: openapi
      with:
        document: { endpoint: https://pets.test/v2/swagger.json }
        operationId: find
        parameters: { status: available }
      output: { as: '{ first: $input, found: length }' }
  - add:
      call: openapi
      with:
        document: { endpoint: https://pets.test/v2/swagger.json }
        operationId: addPet
        parameters: { body: { name: rex } }
      output: { as: '$input + .' }
""",
        host=host,
    )
    assert out == {"first": 7, "found": 1, "created": True}
    assert host.requests[-1]["body"] == {"name": "rex"}
    assert sum(r["uri"].endswith("swagger.json") for r in host.requests) == 1  # fetched once


@pytest.mark.parametrize("call", ["grpc", "asyncapi", "mcp", "a2a"])
def test_unsupported_calls_fault_with_a_configuration_error(call: str) -> None:
    error = fault(f"do:\n  - c: {{ call: {call}, with: {{}} }}\n")
    assert (error.type, error.status, error.instance) == (
        error_type("configuration"),
        400,
        "/do/0/c",
    )
    assert "not supported" in (error.detail or "")


def test_run_shell_is_refused_unless_the_operator_allows_it() -> None:
    text = "do:\n  - sh: { run: { shell: { command: echo hi } } }\n"
    error = fault(text)
    assert error.type == error_type("configuration")
    assert "allow_run_tasks" in (error.detail or "")
    host = FakeHost()
    host.allow_run = True
    assert run(text, host=host)[0] == "ran echo hi"


def test_call_a_function_from_use_functions() -> None:
    host = FakeHost({("get", "https://api.test/pet/3"): {"id": 3}})
    out, _ = run(
        """
use:
  functions:
    getPet:
      call: http
      with: { method: get, endpoint: 'https://api.test/pet/{id}' }
do:
  - c:
      call: getPet
      with: { id: 3 }
""",
        host=host,
    )
    assert out == {"id": 3}


# --------------------------------------------------------------------------- run, emit, listen


def test_run_workflow_goes_through_the_host() -> None:
    out, host = run(
        """
do:
  - child:
      run:
        workflow: { namespace: ns, name: kid, version: '1.0.0', input: { x: '${ .x }' } }
""",
        {"x": 1},
    )
    assert out == {"child": "kid", "got": {"x": 1}}
    assert host.workflows == [("ns", "kid", "1.0.0", {"x": 1})]
    error = fault(
        "do:\n  - child: { run: { workflow: { namespace: ns, name: broken, version: '1' } } }\n"
    )
    assert error.instance == "/do/0/child"


def test_emit_builds_a_cloudevent() -> None:
    out, host = run(
        """
do:
  - e:
      emit:
        event:
          with:
            source: https://src.test
            type: test.greeted
            data: { greeting: '${ "Hello \\(.name)" }' }
""",
        {"name": "Ada"},
    )
    assert host.emitted == [out]
    assert {k: out[k] for k in ("source", "type", "data", "specversion")} == {
        "source": "https://src.test",
        "type": "test.greeted",
        "data": {"greeting": "Hello Ada"},
        "specversion": "1.0",
    }
    assert out["id"] and out["time"].startswith("2025-01-01")


def ev(type: str, data: Any = None, **extra: Any) -> dict[str, Any]:
    return {"id": type, "source": "s", "type": type, "specversion": "1.0", "data": data, **extra}


def test_listen_one_all_any_and_read_modes() -> None:
    events = [ev("other"), ev("a", {"n": 1}), ev("b", {"n": 2})]
    out, _ = run(
        "do:\n  - l: { listen: { to: { one: { with: { type: b } } } } }\n",
        host=FakeHost(events=events),
    )
    assert out == [{"n": 2}]
    out, _ = run(
        "do:\n  - l: { listen: { to: { all: [ { with: { type: b } }, { with: { type: a } } ] } } }"
        "\n",
        host=FakeHost(events=events),
    )
    assert out == [{"n": 1}, {"n": 2}]
    out, _ = run(
        "do:\n  - l: { listen: { to: { any: [ { with: { type: '^(a|b)$' } } ] }, read: envelope } }"
        "\n",
        host=FakeHost(events=events),
    )
    assert [e["type"] for e in out] == ["a"]


def test_listen_filters_on_data_expressions_and_correlates() -> None:
    events = [
        ev("t", {"temp": 37, "room": 1}),
        ev("t", {"temp": 39, "room": 2}),
        ev("bpm", {"bpm": 50, "room": 1}),
        ev("bpm", {"bpm": 50, "room": 2}),
    ]
    out, _ = run(
        """
do:
  - l:
      listen:
        to:
          all:
            - with: { type: t, data: '${ .temp > 38 }' }
              correlate: { room: { from: .data.room } }
            - with: { type: bpm }
              correlate: { room: { from: .data.room } }
""",
        host=FakeHost(events=events),
    )
    assert out == [{"temp": 39, "room": 2}, {"bpm": 50, "room": 2}]
    out, _ = run(
        """
do:
  - l:
      listen:
        to:
          one:
            with: { type: bpm }
            correlate: { room: { from: .data.room, expect: '${ .room }' } }
""",
        {"room": 2},
        FakeHost(events=events),
    )
    assert out == [{"bpm": 50, "room": 2}]


def test_listen_any_until_and_timeout() -> None:
    events = [ev("x", 1), ev("x", 2), ev("stop"), ev("x", 3)]
    out, _ = run(
        """
do:
  - l:
      listen:
        to:
          any: [ { with: { type: x } } ]
          until:
            one: { with: { type: stop } }
""",
        host=FakeHost(events=events),
    )
    assert out == [1, 2]
    error = fault(
        "do:\n  - l: { timeout: { after: PT5S },"
        " listen: { to: { one: { with: { type: never } } } } }\n"
    )
    assert (error.type, error.instance) == (error_type("timeout"), "/do/0/l")


# ------------------------------------------------------------------- steps, cancellation, uri


def test_each_task_is_recorded_with_its_pointer_and_kind() -> None:
    _, host = run("""
do:
  - t:
      try:
        - inner: { set: { a: 1 } }
      catch: {}
""")
    assert host.steps == [
        ("/do/0/t", "sw:try", "running"),
        ("/do/0/t/try/0/inner", "sw:set", "running"),
        ("/do/0/t/try/0/inner", "sw:set", "succeeded"),
        ("/do/0/t", "sw:try", "succeeded"),
    ]


def test_own_pointer_is_not_recorded_twice() -> None:
    host = FakeHost()
    document = doc("do:\n  - a: { set: { a: 1 } }\n")
    runner = Runner(document, host, own_pointer="/do/0/a")
    assert runner.run_task(
        "a", document["do"][0]["a"], "/do/0/a", None, runner.workflow_scope()
    ) == ({"a": 1}, "continue")
    assert host.steps == []


def test_cancellation_stops_between_tasks() -> None:
    host = FakeHost()
    host.cancel_after_steps = 4
    with pytest.raises(Cancelled):
        run(
            "do:\n  - l: { for: { in: '[range(100)]' },"
            " do: [ { s: { set: { i: '${ $item }' } } } ] }\n",
            host=host,
        )
    assert ("/do/0/l", "sw:for", "cancelled") in host.steps
    assert len(host.steps) < 10


def test_uri_template_simple_expansion() -> None:
    assert (
        expand("https://x/{a}/{b}?q={c}", {"a": "a b/c", "b": 1, "c": None})
        == "https://x/a%20b%2Fc/1?q="
    )
    with pytest.raises(ValueError):
        expand("https://x/{a}", {"a": {"nested": 1}})


def test_error_types_match_across_spellings() -> None:
    assert same_type("https://serverlessworkflow.io/dsl/errors/types/communication", COMMUNICATION)
    assert not same_type("https://serverlessworkflow.io/dsl/errors/types/timeout", COMMUNICATION)
    err = WorkflowError.standard("communication", "x", instance="/do/0/a/try/0/b", status=503)
    assert err.matches({"instance": "/do/0/a", "status": 503})
    assert not err.matches({"status": "404"})
