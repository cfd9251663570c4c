"""engine/formats/serverless.py and sw_schema.py: Serverless Workflow 1.0 validation and loading."""

from __future__ import annotations

import copy
import re
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any

import jq
import pytest
import yaml
from jsonschema import validators

from engine.definitions import load_definition, parse_yaml
from engine.errors import InvalidWorkflow
from engine.formats import sw_schema
from engine.formats.serverless import load_serverless, validate_serverless
from tests.services import services_required, shared_dir

SPEC = shared_dir() / "reference" / "serverless-workflow"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "serverless"
# In CI (CANVASFLOW_REQUIRE_SERVICES=1) a missing reference fails instead of skipping.
needs_spec = pytest.mark.skipif(
    not SPEC.is_dir() and not services_required(), reason=f"spec reference not found at {SPEC}"
)

# Spec examples that are genuinely invalid, with the exact problem they raise.
KNOWN_INVALID = {
    # The sample logging extension writes "\(" inside a double-quoted YAML string. Were that
    # fixed, the schema would still refuse its task at /do/0/sampleTask/with: "'endpoint' is
    # a required property" and "Unevaluated properties are not allowed ('uri' was unexpected)".
    "dsl.md:737": "malformed YAML at line 17, column 51: found unknown escape character '('",
}


# --- the specification's own examples ----------------------------------------------------

_COMPLETE_DOCUMENT = re.compile(r"^document:[ \t]*\n(?:[ \t]+.*\n)*?[ \t]+dsl:", re.MULTILINE)


def extract_spec_examples() -> list[tuple[str, str]]:
    """(``file:line`` of the ```yaml fence, text) for each complete workflow in the DSL docs."""
    examples = []
    for name in ("dsl-reference.md", "dsl.md"):
        lines = (SPEC / name).read_text(encoding="utf-8").splitlines()
        fence = None
        for number, line in enumerate(lines, start=1):
            if fence is None and line.startswith("```yaml"):
                fence = number
            elif fence is not None and line.startswith("```"):
                text = "\n".join(lines[fence : number - 1]) + "\n"
                if _COMPLETE_DOCUMENT.search(text):
                    examples.append((f"{name}:{fence}", text))
                fence = None
    return examples


def extract_ctk_workflows() -> list[tuple[str, str]]:
    """(``ctk/file:line``, text) for each ``Given a workflow with definition:`` docstring."""
    examples = []
    for path in sorted((SPEC / "ctk").glob("*.feature")):
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            if line.strip() != "Given a workflow with definition:":
                continue
            opening = lines[number]  # the line after, 0-based index == number
            assert opening.strip().startswith('"""'), f"{path.name}:{number + 1}"
            indent = len(opening) - len(opening.lstrip())
            end = next(i for i in range(number + 1, len(lines)) if lines[i].strip() == '"""')
            text = "\n".join(row[indent:] for row in lines[number + 1 : end]) + "\n"
            examples.append((f"ctk/{path.name}:{number}", text))
    return examples


SPEC_EXAMPLES = extract_spec_examples() if SPEC.is_dir() else []
CTK_WORKFLOWS = extract_ctk_workflows() if SPEC.is_dir() else []


def _example_params(examples: list[tuple[str, str]]) -> list[Any]:
    return [
        pytest.param(
            text,
            id=where,
            marks=[pytest.mark.xfail(strict=True, reason=KNOWN_INVALID[where])]
            if where in KNOWN_INVALID
            else [],
        )
        for where, text in examples
    ]


@needs_spec
def test_extraction_finds_the_examples() -> None:
    assert len(SPEC_EXAMPLES) >= 40
    assert len(CTK_WORKFLOWS) >= 20
    assert set(KNOWN_INVALID) <= {where for where, _ in SPEC_EXAMPLES + CTK_WORKFLOWS}


@needs_spec
@pytest.mark.parametrize("text", _example_params(SPEC_EXAMPLES))
def test_spec_example_is_accepted(text: str) -> None:
    workflow = load_serverless(parse_yaml(text))
    assert workflow.format == "serverless"


@needs_spec
@pytest.mark.parametrize("text", _example_params(CTK_WORKFLOWS))
def test_ctk_workflow_is_accepted(text: str) -> None:
    workflow = load_serverless(parse_yaml(text))
    assert workflow.format == "serverless"


@needs_spec
def test_known_invalid_examples_fail_for_the_recorded_reason() -> None:
    texts = dict(SPEC_EXAMPLES + CTK_WORKFLOWS)
    for where, reason in KNOWN_INVALID.items():
        with pytest.raises(InvalidWorkflow) as caught:
            load_serverless(parse_yaml(texts[where]))
        assert [p.message for p in caught.value.problems] == [reason], where


@needs_spec
def test_shipped_schema_is_the_official_one_verbatim() -> None:
    shipped = Path(sw_schema.__file__).with_name(sw_schema.SCHEMA_FILE)
    assert shipped.read_bytes() == (SPEC / "workflow.yaml").read_bytes()


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = sw_schema.official_schema()
    draft = validators.validator_for(schema)
    assert draft is validators.Draft202012Validator
    draft.check_schema(schema)


# --- the fast validator gives the official verdicts -------------------------------------


def _mutations(document: dict[str, Any]) -> list[dict[str, Any]]:
    """Variants of ``document`` with its first task bent in ways that test task dispatch."""
    if not document.get("do") or not isinstance(document["do"][0], dict):
        return []
    ((name, task),) = document["do"][0].items()
    bends = [
        lambda t: t.update(bogus=1),
        lambda t: t.update(set={"x": 1}) if "set" not in t else t.update(wait="PT1S"),
        lambda t: t.update(**{"for": {"in": ".items"}}),  # a do task becomes a valid for task
        lambda t: t.update(do=[{"inner": {"set": {"x": 1}}}]),
        lambda t: t.pop("with", None),
        lambda t: t.update(call="grpc") if t.get("call") == "http" else t.update(call="http"),
        lambda t: t.update(call=5),
        lambda t: t.update(then=5),
        lambda t: t.clear(),
    ]
    variants = []
    for bend in bends:
        variant = copy.deepcopy(document)
        bend(variant["do"][0][name])
        variants.append(variant)
    return variants


@pytest.mark.slow
@needs_spec
def test_fast_validator_agrees_with_the_schema_as_written() -> None:
    schema = sw_schema.official_schema()
    official = validators.validator_for(schema)(schema)
    documents = [
        yaml.safe_load(text)
        for where, text in SPEC_EXAMPLES + CTK_WORKFLOWS
        if where not in KNOWN_INVALID
    ]
    documents += [variant for document in documents for variant in _mutations(document)]
    documents += [
        yaml.safe_load(path.read_text())
        for path in sorted(FIXTURES.glob("*.yaml"))
        if path.name != "malformed.yaml"
    ]
    verdicts = {"valid": 0, "invalid": 0}
    for document in documents:
        expected = official.is_valid(document)
        assert sw_schema.validator().is_valid(document) is expected, document
        verdicts["valid" if expected else "invalid"] += 1
    assert verdicts["valid"] > 60 and verdicts["invalid"] > 300


# --- loading -------------------------------------------------------------------------------


def _fixture(name: str) -> Any:
    return yaml.safe_load((FIXTURES / name).read_text(encoding="utf-8"))


def _document(*tasks: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {
        "document": {"dsl": "1.0.0", "namespace": "test", "name": "sample", "version": "0.1.0"},
        **top,
        "do": list(tasks),
    }


def _problems(document: Any) -> list[tuple[str, str]]:
    return [(p.pointer, p.message) for p in validate_serverless(document)]


def test_load_chains_start_each_top_level_task_and_end() -> None:
    document = _document(
        {"first": {"set": {"a": 1}}},
        {"second": {"set": {"b": 2}, "then": "third"}},
        {"third": {"wait": {"seconds": 0}}},
    )
    workflow = load_serverless(document)
    task_ids = ["/do/0/first", "/do/1/second", "/do/2/third"]
    assert [n.id for n in workflow.nodes] == ["start", *task_ids, "end"]
    assert [n.type for n in workflow.nodes] == ["start", "sw_task", "sw_task", "sw_task", "end"]
    assert [e.key() for e in workflow.edges] == [
        "start->/do/0/first",
        "/do/0/first->/do/1/second",
        "/do/1/second->/do/2/third",
        "/do/2/third->end",
    ]
    assert workflow.node_map["/do/1/second"].config == {
        "name": "second",
        "task": document["do"][1]["second"],
        "pointer": "/do/1/second",
    }
    assert (workflow.name, workflow.format) == ("sample", "serverless")
    assert workflow.meta == {"document": document}


def test_load_runs_a_root_list_with_jumps_as_one_node() -> None:
    # order-fulfilment jumps by name (a switch to `ship`, `then: end` mid-list): one /do node
    document = _fixture("order-fulfilment.yaml")
    workflow = load_serverless(document)
    assert [n.id for n in workflow.nodes] == ["start", "/do", "end"]
    assert workflow.node_map["/do"].config["task"] == {"do": document["do"]}
    assert (workflow.name, workflow.format) == ("order-fulfilment", "serverless")


def test_load_definition_dispatches_serverless_documents() -> None:
    workflow = load_definition(_document({"greet": {"set": {"message": "hello"}}}))
    assert workflow.format == "serverless"
    assert [n.id for n in workflow.nodes] == ["start", "/do/0/greet", "end"]


def test_task_names_are_escaped_in_node_ids() -> None:
    workflow = load_serverless(_document({"a/b~c": {"set": {"x": 1}}}))
    assert workflow.nodes[1].id == "/do/0/a~1b~0c"


def test_load_raises_with_every_problem() -> None:
    with pytest.raises(InvalidWorkflow) as caught:
        load_serverless(_fixture("schema-errors.yaml"))
    assert len(caught.value.problems) == 3
    assert caught.value.status == 422


# --- schema errors ----------------------------------------------------------------------------


def test_schema_errors_point_at_the_offending_values() -> None:
    assert _problems(_fixture("schema-errors.yaml")) == [
        ("/do/0/getPet/with", "'endpoint' is a required property"),
        (
            "/do/1/pause/wait",
            "'soon' matches none of the allowed forms: expected DurationExpression or "
            "DurationLiteral",
        ),
        (
            "/do/2/mystery",
            "{'frobnicate': True} is not a valid Task: expected one of the properties 'call', "
            "'do', 'fork', 'emit', 'for', 'listen', 'raise', 'run', 'set', 'switch', 'try', 'wait'",
        ),
    ]


def test_schema_problems_carry_the_node_id_of_their_task() -> None:
    problems = validate_serverless(_fixture("schema-errors.yaml"))
    assert [p.node_id for p in problems] == ["/do/0/getPet", "/do/1/pause", "/do/2/mystery"]


@pytest.mark.parametrize(
    ("task", "pointer", "message"),
    [
        ({"call": 5}, "/do/0/t/call", "5 is not of type 'string'"),
        ({"call": "http"}, "/do/0/t", "'with' is a required property"),
        (
            {"call": "http", "with": {"method": "get", "endpoint": "https://x", "foo": 1}},
            "/do/0/t/with",
            "Unevaluated properties are not allowed ('foo' was unexpected)",
        ),
        (
            {"set": {"a": 1}, "wait": "PT1S"},
            "/do/0/t",
            "Unevaluated properties are not allowed ('wait' was unexpected)",
        ),
        ({"set": {"a": 1}, "then": 7}, "/do/0/t/then", "7 is not of type 'string'"),
        ({"wait": {"hours": "x"}}, "/do/0/t/wait/hours", "'x' is not of type 'integer'"),
        ({"for": {"each": "x"}, "do": []}, "/do/0/t/for", "'in' is a required property"),
        ({"run": {"shell": {}}}, "/do/0/t/run/shell", "'command' is a required property"),
        (
            {
                "call": "http",
                "with": {
                    "method": "get",
                    "endpoint": {
                        "uri": "https://x",
                        "authentication": {"basic": {"username": "u"}},
                    },
                },
            },
            "/do/0/t/with/endpoint/authentication/basic",
            "'password' is a required property",
        ),
        (
            {"do": [{"inner": {"switch": [{"a": {"when": ".x"}}]}}]},
            "/do/0/t/do/0/inner/switch/0/a",
            "'then' is a required property",
        ),
        (
            {"listen": {"to": {"one": {"with": {"type": "x"}}}, "read": "bogus"}},
            "/do/0/t/listen/read",
            "'bogus' is not one of ['data', 'envelope', 'raw']",
        ),
    ],
)
def test_schema_error_says_what_is_wrong_and_where(
    task: dict[str, Any], pointer: str, message: str
) -> None:
    assert _problems(_document({"t": task})) == [(pointer, message)]


def test_two_tasks_in_one_list_item_is_named() -> None:
    document = _document({"a": {"set": {"x": 1}}, "b": {"set": {"x": 2}}})
    assert _problems(document) == [("/do/0", "expected a single entry, found 2 ('a', 'b')")]


def test_header_problems_are_all_reported() -> None:
    document = {"document": {"dsl": 1, "name": "not a name", "extra": True}, "do": {}}
    assert _problems(document) == [
        ("/document", "Unevaluated properties are not allowed ('extra' was unexpected)"),
        ("/document/dsl", "1 is not of type 'string'"),
        (
            "/document/name",
            "'not a name' does not match '^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$'",
        ),
        ("/document", "'namespace' is a required property"),
        ("/document", "'version' is a required property"),
        ("/do", "{} is not of type 'array'"),
    ]


def test_a_non_object_document_is_refused_at_the_root() -> None:
    assert _problems([]) == [("", "[] is not of type 'object'")]


def test_long_values_are_abbreviated_in_messages() -> None:
    then = {f"key{i}": "v" * 40 for i in range(5)}
    [(_, message)] = _problems(_document({"t": {"set": {"x": 1}, "then": then}}))
    assert message == "{'key0': ..., 'key1': ..., 'key2': ..., ...} is not of type 'string'"
    [(_, message)] = _problems(_document({"t": {"wait": "x" * 100}}))
    assert message.startswith("'xxxx") and "...' matches none" not in message
    assert "x" * 60 not in message


# --- what the schema cannot say -------------------------------------------------------------


def test_every_semantic_problem_is_reported_together() -> None:
    assert _problems(_fixture("every-semantic-problem.yaml")) == [
        ("/do/1/first", "duplicate task name 'first' in this list (first at /do/0/first)"),
        (
            "/do/0/first/then",
            "then 'nowhere' names no task of the same list (tasks: authUnknown, callsUnknown, "
            "first, raisesUnknown, retriesUnknown) nor a flow directive (continue, exit, end)",
        ),
        (
            "/do/2/callsUnknown/call",
            "call 'notDefined' is neither a built-in call "
            "(a2a, asyncapi, grpc, http, mcp, openapi) nor defined in use.functions",
        ),
        (
            "/do/3/raisesUnknown/raise/error",
            "raise.error 'unknownError' is not defined in use.errors",
        ),
        ("/do/4/retriesUnknown/catch/retry", "retry 'unknownRetry' is not defined in use.retries"),
        (
            "/do/5/authUnknown/with/endpoint/authentication/use",
            "authentication 'unknownAuth' is not defined in use.authentications",
        ),
    ]


def test_schema_and_semantic_problems_are_reported_together() -> None:
    document = _document(
        {"a": {"set": {"x": 1}, "then": "b"}}, {"a": {"wait": "soon"}}, {"c": {"call": "missing"}}
    )
    document["document"]["dsl"] = "2.0.0"
    assert [pointer for pointer, _ in _problems(document)] == [
        "/do/1/a/wait",
        "/document/dsl",
        "/do/1/a",
        "/do/0/a/then",
        "/do/2/c/call",
    ]


@pytest.mark.parametrize("target", ["continue", "exit", "end", "b"])
def test_then_may_name_a_flow_directive_or_a_sibling(target: str) -> None:
    document = _document({"a": {"set": {"x": 1}, "then": target}}, {"b": {"set": {"x": 2}}})
    assert _problems(document) == []


def test_then_cannot_leave_its_own_list() -> None:
    document = _document(
        {"outer": {"do": [{"inner": {"set": {"x": 1}, "then": "after"}}]}},
        {"after": {"set": {"x": 2}}},
    )
    assert [p for p, _ in _problems(document)] == ["/do/0/outer/do/0/inner/then"]


def test_switch_cases_must_name_tasks_of_the_switch_list() -> None:
    document = _document(
        {
            "route": {
                "switch": [
                    {"big": {"when": ".n > 10", "then": "large"}},
                    {"other": {"then": "small"}},
                ]
            }
        },
        {"small": {"set": {"size": "small"}, "then": "end"}},
    )
    assert _problems(document) == [
        (
            "/do/0/route/switch/0/big/then",
            "then 'large' names no task of the same list (tasks: route, small) nor a flow "
            "directive (continue, exit, end)",
        )
    ]


@pytest.mark.parametrize(
    ("make_task", "pointer"),
    [
        (lambda tasks: {"do": tasks}, "/do/0/t/do/1/x"),
        (lambda tasks: {"fork": {"branches": tasks}}, "/do/0/t/fork/branches/1/x"),
        (lambda tasks: {"try": tasks, "catch": {}}, "/do/0/t/try/1/x"),
        (
            lambda tasks: {"try": [{"ok": {"set": {"y": 1}}}], "catch": {"do": tasks}},
            "/do/0/t/catch/do/1/x",
        ),
        (lambda tasks: {"for": {"in": ".items"}, "do": tasks}, "/do/0/t/do/1/x"),
    ],
    ids=["do", "fork.branches", "try", "catch.do", "for.do"],
)
def test_duplicate_task_names_in_any_task_list(make_task: Any, pointer: str) -> None:
    task = make_task([{"x": {"set": {"n": 1}}}, {"x": {"set": {"n": 2}}}])
    [(where, message)] = _problems(_document({"t": task}))
    assert where == pointer
    assert message.startswith("duplicate task name 'x' in this list (first at ")


def test_same_name_in_different_lists_is_fine() -> None:
    document = _document({"x": {"do": [{"x": {"set": {"n": 1}}}]}})
    assert _problems(document) == []


@pytest.mark.parametrize("call", ["http", "openapi", "grpc", "asyncapi", "a2a", "mcp"])
def test_builtin_calls_need_no_definition(call: str) -> None:
    problems = _problems(_document({"t": {"call": call, "with": {}}}))
    assert not [m for _, m in problems if "use.functions" in m]


def test_calls_to_defined_functions_and_catalogs_are_accepted() -> None:
    document = _document(
        {"a": {"call": "notify", "with": {"to": "x"}}},
        {"b": {"call": "log:1.0.0@shared"}},
        {"c": {"call": "log:1.0.0@default"}},
        {"d": {"call": "https://github.com/org/functions/validate@v1.0.0"}},
        use={
            "functions": {
                "notify": {
                    "call": "http",
                    "with": {"method": "post", "endpoint": "https://notify.example.com"},
                }
            },
            "catalogs": {"shared": {"endpoint": "https://catalog.example.com"}},
        },
    )
    assert _problems(document) == []


def test_call_to_an_undeclared_catalog_is_refused() -> None:
    assert _problems(_document({"a": {"call": "log:1.0.0@elsewhere"}})) == [
        (
            "/do/0/a/call",
            "call 'log:1.0.0@elsewhere' names catalog 'elsewhere', which is not defined in "
            "use.catalogs",
        )
    ]


def test_defined_references_are_accepted() -> None:
    use = {
        "errors": {"boom": {"type": "https://x.example.com/boom", "status": 500}},
        "retries": {"again": {"delay": "PT1S"}},
        "authentications": {"token": {"bearer": {"token": "t"}}},
        "timeouts": {"short": {"after": "PT5S"}},
    }
    document = _document(
        {"a": {"raise": {"error": "boom"}, "timeout": "short"}},
        {
            "b": {
                "try": [
                    {
                        "c": {
                            "call": "http",
                            "with": {
                                "method": "get",
                                "endpoint": {
                                    "uri": "https://x.example.com",
                                    "authentication": {"use": "token"},
                                },
                            },
                        }
                    }
                ],
                "catch": {"retry": "again"},
            }
        },
        use=use,
        timeout="short",
    )
    assert _problems(document) == []


def test_undefined_references_in_use_functions_and_timeouts_are_refused() -> None:
    document = _document(
        {"a": {"call": "f", "timeout": "never"}},
        use={
            "functions": {
                "f": {
                    "call": "openapi",
                    "with": {
                        "document": {"endpoint": "https://x.example.com/openapi.json"},
                        "operationId": "op",
                        "authentication": {"use": "nobody"},
                    },
                }
            }
        },
    )
    assert _problems(document) == [
        ("/do/0/a/timeout", "timeout 'never' is not defined in use.timeouts"),
        (
            "/use/functions/f/with/authentication/use",
            "authentication 'nobody' is not defined in use.authentications",
        ),
    ]


def test_authentication_given_as_a_string_must_be_defined() -> None:
    task = {
        "call": "http",
        "with": {
            "method": "get",
            "endpoint": {"uri": "https://x.example.com", "authentication": "nobody"},
        },
    }
    problems = _problems(_document({"a": task}))
    assert (
        "/do/0/a/with/endpoint/authentication",
        "authentication 'nobody' is not defined in use.authentications",
    ) in problems


def test_arguments_of_custom_functions_are_not_mistaken_for_references() -> None:
    document = _document(
        {"a": {"call": "f", "with": {"endpoint": {"authentication": {"use": "whatever"}}}}},
        use={
            "functions": {
                "f": {
                    "call": "http",
                    "with": {"method": "get", "endpoint": "https://x.example.com"},
                }
            }
        },
    )
    assert _problems(document) == []


@pytest.mark.parametrize(
    ("dsl", "accepted"),
    [
        ("1.0.0", True),
        ("1.0.3", True),
        ("1.0.0-alpha5", True),
        ("2.0.0", False),
        ("1.1.0", False),
        ("0.9.0", False),
    ],
)
def test_only_dsl_1_0_x_is_accepted(dsl: str, accepted: bool) -> None:
    document = _document({"a": {"set": {"x": 1}}})
    document["document"]["dsl"] = dsl
    problems = _problems(document)
    assert problems == (
        []
        if accepted
        else [
            (
                "/document/dsl",
                f"unsupported DSL version {dsl!r}: Canvasflow runs Serverless Workflow 1.0.x",
            )
        ]
    )


def test_dsl_2_document_is_refused() -> None:
    with pytest.raises(InvalidWorkflow) as caught:
        load_definition(_fixture("dsl-2.yaml"))
    assert [p.to_dict() for p in caught.value.problems] == [
        {
            "pointer": "/document/dsl",
            "message": "unsupported DSL version '2.0.0': Canvasflow runs Serverless Workflow 1.0.x",
        }
    ]


def test_yaml_syntax_error_is_one_clear_problem() -> None:
    with pytest.raises(InvalidWorkflow) as caught:
        parse_yaml((FIXTURES / "malformed.yaml").read_text(encoding="utf-8"))
    [problem] = caught.value.problems
    assert problem.pointer == ""
    assert problem.message.startswith("malformed YAML at line 10, column 1: ")
    assert "end of stream" in problem.message


# --- runtime expressions -------------------------------------------------------------------


def _jq_check_syntax(source: str) -> str | None:
    """A stand-in for engine.expressions.check_syntax: compile with jq, names bound."""
    try:
        jq.compile(source, args={name: None for name in re.findall(r"\$(\w+)", source)})
    except ValueError as exc:
        return str(exc).splitlines()[0]
    return None


@pytest.fixture
def jq_syntax(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Install a stand-in expressions module; returns every source it was asked about."""
    seen: list[str] = []

    def check_syntax(source: str) -> str | None:
        seen.append(source)
        return _jq_check_syntax(source)

    module = types.ModuleType("engine.expressions")
    module.check_syntax = check_syntax  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "engine.expressions", module)
    return seen


def test_expressions_are_checked_where_the_spec_expects_them(jq_syntax: list[str]) -> None:
    document = _document(
        {
            "a": {
                "if": ".x ==",
                "set": {"ok": "${ .a }", "bad": "${ .a | }"},
                "output": {"as": "{ x: }"},
                "export": {"as": "$context + ."},
            }
        },
        {
            "b": {
                "for": {"in": "${ .items[ }"},
                "while": "$index < 3",
                "do": [{"c": {"set": "${ {a: } }"}}],
            }
        },
        {"d": {"switch": [{"big": {"when": ". >", "then": "end"}}]}},
        {
            "e": {
                "try": [{"f": {"set": {"x": 1}}}],
                "catch": {
                    "when": ".status ==",
                    "exceptWhen": "true",
                    "retry": {"when": "(", "delay": "PT1S"},
                },
            }
        },
        input={"from": ".raw"},
        output={"as": ".out |"},
    )
    assert [
        pointer
        for pointer, message in _problems(document)
        if message.startswith("invalid runtime expression: ")
    ] == [
        "/do/0/a/if",
        "/do/0/a/output/as",
        "/do/1/b/for/in",
        "/do/1/b/do/0/c/set",
        "/do/2/d/switch/0/big/when",
        "/do/3/e/catch/when",
        "/do/3/e/catch/retry/when",
        "/output/as",
        "/do/0/a/set/bad",
    ]
    assert ".a" in jq_syntax and "$context + ." in jq_syntax and ".raw" in jq_syntax


def test_plain_text_outside_expression_fields_is_not_jq(jq_syntax: list[str]) -> None:
    document = _document(
        {
            "a": {
                "call": "http",
                "with": {
                    "method": "post",
                    "endpoint": "https://x.example.com",
                    "body": {
                        "note": ".a = broken",
                        "text": "Hello ${ .name }, ${ .greeting }!",
                        "id": "${ .id }",
                    },
                },
            }
        }
    )
    assert _problems(document) == []
    assert jq_syntax == [".id"]


def test_expression_problem_names_the_error(jq_syntax: list[str]) -> None:
    [(pointer, message)] = _problems(_document({"a": {"set": {"x": 1}, "if": "${ .a == }"}}))
    assert pointer == "/do/0/a/if"
    assert message.startswith("invalid runtime expression: ") and "syntax error" in message


def test_expressions_are_skipped_without_an_expressions_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "engine.expressions", None)  # import now fails
    assert _problems(_document({"a": {"set": {"x": 1}, "if": "${ .a == }"}})) == []


def test_the_real_expressions_module_is_used_when_present() -> None:
    expressions = pytest.importorskip("engine.expressions")
    if not hasattr(expressions, "check_syntax"):
        pytest.skip("engine.expressions has no check_syntax yet")
    problems = _problems(_document({"a": {"set": {"x": 1}, "if": "${ .a == }"}}))
    assert [pointer for pointer, _ in problems] == ["/do/0/a/if"]


# --- performance ---------------------------------------------------------------------------


def test_validator_is_built_once() -> None:
    validate_serverless(_fixture("order-fulfilment.yaml"))
    validate_serverless(_fixture("schema-errors.yaml"))
    assert sw_schema.validator() is sw_schema.validator()
    info = sw_schema.validator.cache_info()
    assert (info.misses, info.currsize) == (1, 1)


def test_a_twenty_task_document_validates_in_milliseconds() -> None:
    document = _fixture("order-fulfilment.yaml")
    assert len(document["do"]) == 20
    validate_serverless(document)  # warm-up
    timings = []
    for _ in range(15):
        started = time.perf_counter()
        assert validate_serverless(document) == []
        timings.append(time.perf_counter() - started)
    # ~10 ms here; the schema as written takes ~25x longer, which this would catch.
    assert statistics.median(timings) < 0.05
