"""engine.expressions: jq compiled once, sandboxed, bounded in time. No DB, no broker."""

from __future__ import annotations

import os
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from engine import expressions
from engine.errors import ExpressionError, StepError
from engine.expressions import (
    Compiled,
    check_syntax,
    compile_expression,
    evaluate,
    is_expression_string,
    referenced_steps,
    referenced_steps_in_expression,
    render,
    set_default_timeout,
    strip_expression,
    template_syntax_errors,
)

# --- compiling -----------------------------------------------------------------------------


def test_compile_is_cached_and_returns_the_same_object():
    first = compile_expression(".a | length")
    assert isinstance(first, Compiled)
    assert compile_expression(".a | length") is first


def test_syntax_error_raises_expression_error_naming_the_expression():
    with pytest.raises(ExpressionError) as caught:
        compile_expression(".a | ")
    assert isinstance(caught.value, StepError)
    assert caught.value.expression == ".a | "
    assert "'.a | '" in caught.value.detail
    assert "syntax error" in caught.value.detail
    assert "<top-level>" not in caught.value.detail


@pytest.mark.parametrize("source", ["", "   ", "{a:", ".a)", '"unterminated', "[1, 2"])
def test_invalid_sources_are_refused(source):
    assert check_syntax(source) is not None
    with pytest.raises(ExpressionError):
        compile_expression(source)


def test_check_syntax_is_none_for_valid_programs():
    assert check_syntax('.input.user_id | tostring | "u-" + .') is None
    assert check_syntax("def f(x): x + 1; [.[] | f(.)]") is None
    assert check_syntax("$context.a + $item") is None  # free variables are not syntax


def test_check_syntax_with_variable_names_flags_unknown_variables():
    assert check_syntax("$item + 1", variables=["item"]) is None
    message = check_syntax("$item + $nope", variables=["item"])
    assert message is not None and "$nope is not defined" in message
    assert check_syntax(". as $x | $x", variables=[]) is None


# --- evaluating ----------------------------------------------------------------------------


def test_evaluate_returns_the_first_output():
    assert evaluate(".[]", [3, 4, 5]) == 3
    assert evaluate(".a, .b", {"a": 1, "b": 2}) == 1


def test_evaluate_returns_none_when_there_is_no_output():
    assert evaluate("empty", {"a": 1}) is None
    assert evaluate(".[] | select(. > 10)", [1, 2]) is None


def test_evaluate_all_returns_every_output():
    assert compile_expression(".[] | . * 10").evaluate_all([1, 2]) == [10, 20]
    assert compile_expression("empty").evaluate_all(None) == []


def test_outputs_are_plain_json_values():
    value = evaluate('{s: "x", i: 1, f: 1.5, b: true, n: null, l: [1, {"k": []}]}', None)
    assert value == {"s": "x", "i": 1, "f": 1.5, "b": True, "n": None, "l": [1, {"k": []}]}
    assert [type(v) for v in value.values()] == [str, int, float, bool, type(None), list]


def test_variables_are_bound_per_evaluation_on_one_compiled_program():
    compiled = compile_expression("$item * 10 + $index + .base")
    assert compiled.evaluate({"base": 0}, {"item": 1, "index": 2}) == 12
    assert compiled.evaluate({"base": 100}, {"item": 3, "index": 4, "unused": 9}) == 134
    assert len(compiled._programs) == 1  # compiled once, values bound through the input


def test_serverless_style_variables():
    variables = {"context": {"user": "ada"}, "input": {"n": 2}, "workflow": {"id": "w1"}}
    assert evaluate('"\\($context.user)-\\($input.n)-\\($workflow.id)"', {}, variables) == (
        "ada-2-w1"
    )


def test_missing_variable_is_an_expression_error():
    with pytest.raises(ExpressionError, match=r"\$secret is not defined"):
        evaluate("$secret.token", {})


@pytest.mark.parametrize(
    ("source", "data", "message"),
    [
        (".a.b", {"a": 5}, 'Cannot index number with string ("b")'),
        ('error("custom failure")', None, "custom failure"),
        ("1 + {}", None, "cannot be added"),
    ],
)
def test_runtime_errors_carry_the_jq_message(source, data, message):
    with pytest.raises(ExpressionError, match=re.escape(message)) as caught:
        evaluate(source, data)
    assert caught.value.expression == source


def test_input_that_is_not_json_is_an_expression_error():
    with pytest.raises(ExpressionError, match="not JSON"):
        evaluate(".", {"when": object()})


# --- templates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${ .a }", True),
        ("  ${.a}  ", True),
        ("${ {a: .x} }", True),
        ('${ "}" }', True),
        ("${ .a } and ${ .b }", False),
        ("Hello ${ .a }", False),
        (".a", False),
        ("${ .a", False),
        (5, False),
        (None, False),
    ],
)
def test_is_expression_string(value, expected):
    assert is_expression_string(value) is expected


def test_strip_expression():
    assert strip_expression("  ${ .a | length }  ") == ".a | length"
    assert strip_expression("${ {a: .x} }") == "{a: .x}"
    assert strip_expression(" .a ") == ".a"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("${ .n }", 7),
        ("${ .s }", "text"),
        ("${ .o }", {"k": [1, 2]}),
        ("${ .missing }", None),
        ("${ .n > 5 }", True),
        ("  ${ .l }  ", [1, "two"]),
        ("${ {a: .n, b: {c: .s}} }", {"a": 7, "b": {"c": "text"}}),
    ],
)
def test_render_whole_string_gives_the_typed_value(template, expected):
    data = {"n": 7, "s": "text", "o": {"k": [1, 2]}, "l": [1, "two"]}
    assert render(template, data) == expected


def test_render_interpolates_strings_raw_and_other_values_as_compact_json():
    data = {"a": "Ada", "b": {"k": [1, 2]}, "n": 3, "z": None, "t": True}
    assert render("Hello ${ .a } and ${ .b }", data) == 'Hello Ada and {"k":[1,2]}'
    assert render("n=${ .n } z=${ .z } t=${ .t }", data) == "n=3 z=null t=true"
    assert render("${.a}${.n}", data) == "Ada3"


def test_render_handles_braces_inside_expressions():
    data = {"x": 1, "name": "é"}
    assert render("obj: ${ {a: .x} }!", data) == 'obj: {"a":1}!'
    assert render('${ "}{" + .name }', data) == "}{é"
    assert render('say ${ "\\({b: .x} | .b)" } now', data) == "say 1 now"


def test_render_walks_nested_templates_and_passes_non_strings_through():
    template = {
        "greeting": "Hello ${ .user.name }",
        "id": "${ .user.id }",
        "list": [1, None, True, "${ .user.tags }", {"deep": "${ .user.id + 1 }"}],
        "plain": "no expression here",
        "dollar": "costs $5 {not} ${ .cost }",
    }
    data = {"user": {"name": "Ada", "id": 41, "tags": ["a"]}, "cost": 5}
    assert render(template, data) == {
        "greeting": "Hello Ada",
        "id": 41,
        "list": [1, None, True, ["a"], {"deep": 42}],
        "plain": "no expression here",
        "dollar": "costs $5 {not} 5",
    }
    assert render(3.5, data) == 3.5


def test_render_binds_variables():
    assert render({"v": "${ $item.name }"}, {}, {"item": {"name": "x"}}) == {"v": "x"}


def test_render_unterminated_expression_is_an_error():
    with pytest.raises(ExpressionError, match="unterminated"):
        render("Hello ${ .a", {"a": 1})


def test_template_syntax_errors_point_into_the_template():
    template = {
        "ok": "${ .a }",
        "bad": "${ .a | }",
        "list": ["x", "n: ${ {a: } }"],
        "a/b": "${ }",
        "open": "${ .x",
        "n": 3,
    }
    errors = dict(template_syntax_errors(template))
    assert set(errors) == {"/bad", "/list/1", "/a~1b", "/open"}
    assert "syntax error" in errors["/bad"]
    assert "unterminated" in errors["/open"]
    assert template_syntax_errors({"fine": ["${ .a }", "x ${ .b } y"]}) == []


# --- referenced steps ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('.steps.get_user.output.body.tier == "vip"', {"get_user"}),
        ('.steps["get-user"].output', {"get-user"}),
        ('.steps."quoted".output', {"quoted"}),
        ('.steps.["dot_bracket"]', {"dot_bracket"}),
        (".steps?.maybe.output", {"maybe"}),
        (".steps.a.output + .steps.b.output", {"a", "b"}),
        ('"\\(.steps.inside.output)"', {"inside"}),
        ('."steps".quoted_root', {"quoted_root"}),
        ('.["steps"].bracket_root', {"bracket_root"}),
        ("{steps: .input.x}", set()),
        (".input.steps.not_a_step", set()),
        (".input", set()),
        (".steps | keys", None),
        (".steps[$x]", None),
        (".steps[]", None),
        (".steps", None),
        ('.steps["\\(.input.id)"]', None),
        ("[..]", None),
    ],
)
def test_referenced_steps_in_expression(source, expected):
    assert referenced_steps_in_expression(source) == expected


def test_referenced_steps_in_a_template():
    template = {
        "greeting": "Hello ${ .steps.get_user.output.body.name }",
        "body": "${ .steps.merge.output }",
        "plain": ".steps.not_an_expression",
        "n": [1, "${ .input.x }"],
    }
    assert referenced_steps(template) == {"get_user", "merge"}
    assert referenced_steps("no expressions") == set()
    assert referenced_steps({"all": "${ .steps | length }", "b": "${ .steps.b }"}) is None


# --- sandbox -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "env",
        "$ENV",
        "env.CANVASFLOW_TEST_SECRET",
        "$ENV.CANVASFLOW_TEST_SECRET",
        "[env[]]",
        "first(range(1)) | env",
    ],
)  # the last runs in the helper
def test_environment_is_not_readable(monkeypatch, source):
    monkeypatch.setenv("CANVASFLOW_TEST_SECRET", "hunter2")
    value = evaluate(source, {})
    assert value in ({}, None, [])
    assert "hunter2" not in repr(compile_expression(source).evaluate_all({}))


@pytest.mark.parametrize(
    "source",
    [
        'import "mod" as m; .',
        'include "mod"; .',
        'import "data" as $d; $d',
        "input",
        "[inputs]",
        "first(inputs)",
        "input_line_number",
        "$__loc__",
        "{$__loc__}",
        "debug",
        'debug("msg")',
        "stderr",
        "halt",
        "halt_error",
        "halt_error(1)",
        '"a" | modulemeta',
        "get_search_list",
        "get_jq_origin",
        "get_prog_origin",
        '"text \\(input)"',
        "def f: input; f",
    ],
)
def test_reading_outside_the_sandbox_is_refused_at_compile_time(source):
    with pytest.raises(ExpressionError, match="not allowed"):
        compile_expression(source)


def test_input_filename_is_null():
    assert evaluate("input_filename", {"a": 1}) is None


def test_refused_names_are_fine_as_keys_and_fields():
    data = {"input": 1, "import": 2, "env": 3}
    assert evaluate("{input, import: .import, debug: .env}", data) == {
        "input": 1,
        "import": 2,
        "debug": 3,
    }
    assert evaluate(".input + .import", data) == 3


def test_prelude_shadows_refused_builtins_even_past_the_lexer():
    # Defence in depth: the wrapped program alone refuses them at run time.
    program = expressions.jq.compile(expressions._wrap("[input_filename, env, $ENV]", frozenset()))
    assert program.input_text('{"d": null, "v": {}}').first() == [None, {}, {}]
    program = expressions.jq.compile(expressions._wrap("input", frozenset()))
    with pytest.raises(ValueError, match="input is not allowed"):
        program.input_text('{"d": null, "v": {}}').first()


# --- time bound ----------------------------------------------------------------------------


@pytest.fixture
def short_timeout():
    set_default_timeout(0.5)
    yield 0.5
    set_default_timeout(2.0)


@pytest.mark.parametrize(
    ("source", "fast"),
    [
        (".a.b", True),
        ("{name: .user.name, tags: [.tags[] | ascii_upcase]}", True),
        ('"a,b" | split(",")', True),
        ("map(select(.ok)) | length", True),
        ("[range(5)]", False),
        ("[repeat(1)]", False),
        ("until(. > 3; . + 1)", False),
        ("[while(. < 3; . + 1)]", False),
        ("[recurse(. + 1)]", False),
        ("[limit(2; .[])]", False),
        ("def f: f; f", False),
        ("reduce .[] as $x (0; . + $x)", False),
        ('"x" * 1e9', False),
        (".[5e8] = 1", False),
        ('test("a+")', False),
        ('split("a+"; null)', False),
        ("[.[] as $a | .[] as $b | .[] as $c | 1]", False),
        ("[{a: (1,2), b: (1,2), c: (1,2)}]", False),
    ],
)
def test_programs_that_could_loop_run_in_the_helper(source, fast):
    assert compile_expression(source).fast is fast


def test_helper_evaluates_like_the_inline_path():
    assert evaluate("[range(3)]", None) == [0, 1, 2]
    assert evaluate("[limit(3; repeat(1))]", None) == [1, 1, 1]
    assert evaluate("range(5; 10)", None) == 5  # first output only
    assert compile_expression("range(3) + $n").evaluate_all(None, {"n": 10}) == [10, 11, 12]
    assert evaluate("def fact: if . <= 1 then 1 else . * (. - 1 | fact) end; fact", 5) == 120
    with pytest.raises(ExpressionError, match="boom"):
        evaluate('[range(2)] | error("boom")', None)


@pytest.mark.parametrize("source", ["last(range(1e12))", "[repeat(1)]"])
def test_endless_program_times_out_and_the_next_one_runs(short_timeout, source):
    started = time.monotonic()
    with pytest.raises(ExpressionError, match=r"timed out after 0\.5s") as caught:
        evaluate(source, None)
    elapsed = time.monotonic() - started
    assert 0.4 < elapsed < 2.0
    assert caught.value.expression == source
    assert evaluate("[range(3)]", None) == [0, 1, 2]
    assert evaluate(".a", {"a": 1}) == 1


def test_timeout_can_be_given_per_evaluation():
    started = time.monotonic()
    with pytest.raises(ExpressionError, match=r"timed out after 0\.3s"):
        compile_expression("last(range(1e12))").evaluate(None, timeout=0.3)
    assert time.monotonic() - started < 1.5


def test_set_default_timeout_refuses_non_positive_values():
    with pytest.raises(ValueError):
        set_default_timeout(0)


def test_concurrent_evaluations_are_thread_safe():
    def work(i: int) -> tuple[int, list[int]]:
        return evaluate(".n * 2", {"n": i}), evaluate("[range($n)]", None, {"n": i % 5})

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(200)))
    assert results == [(i * 2, list(range(i % 5))) for i in range(200)]


def test_forked_child_starts_its_own_helper():
    # Celery's prefork pool forks after the parent may have started a helper.
    assert evaluate("[range(2)]", None) == [0, 1]
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        ok = evaluate("[range(4)]", None) == [0, 1, 2, 3]
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert evaluate("[range(3)]", None) == [0, 1, 2]


def test_inline_evaluation_speed(capsys):
    # A micro-check, not a timed assertion: the design note measured ~75 ms per 10,000.
    compiled = compile_expression(".user.id + $offset")
    assert compiled.fast
    started = time.perf_counter()
    for i in range(10_000):
        compiled.evaluate({"user": {"id": i, "name": "ada"}}, {"offset": 10})
    elapsed = time.perf_counter() - started
    with capsys.disabled():
        print(
            f"\n  expressions: {10_000 / elapsed:,.0f} inline evaluations/s "
            f"({elapsed * 1000:.0f} ms for 10,000)"
        )
