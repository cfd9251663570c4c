"""jq expressions: compiled once, sandboxed, bounded in time.

An expression reads its input and the variables it is given, nothing else. Every program
runs behind a prelude that hides the process environment (``env`` and ``$ENV`` are ``{}``)
and shadows the builtins that read files, stdin or stderr; ``import``/``include`` and those
builtins are refused at compile time.

libjq runs in C and cannot be interrupted, so a program that could loop or blow up (it
defines functions, reduces, multiplies, assigns, calls a builtin outside ``jq_scan._FAST_BUILTINS``
such as ``range``/``repeat``/``until``, or nests many generators) runs in a persistent
helper process under a wall-clock timeout; the helper is killed and restarted when it
overruns (engine/jq_helper.py). Everything else runs inline, which is ~100x faster. The
lexical scan that decides, and finds the ``.steps`` a program reads, is engine/jq_scan.py.

Templates: a string whose whole content is ``${ expr }`` becomes the expression's value;
``${ expr }`` inside a longer string is interpolated as text.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator, Mapping
from typing import Any

import jq

from engine.errors import ExpressionError

from .jq_helper import HELPER
from .jq_scan import LexError, analyse, lex, tokenize
from .jq_scan import referenced_steps_in_expression as referenced_steps_in_expression

__all__ = [
    "Compiled",
    "check_syntax",
    "compile_expression",
    "evaluate",
    "is_expression_string",
    "referenced_steps",
    "referenced_steps_in_expression",
    "render",
    "set_default_timeout",
    "strip_expression",
    "template_syntax_errors",
]

_default_timeout = 2.0
_NOTHING = object()
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def set_default_timeout(seconds: float) -> None:
    """Set the wall-clock bound for programs that run in the helper process."""
    global _default_timeout
    if not seconds > 0:
        raise ValueError("timeout must be positive")
    _default_timeout = float(seconds)


# --- compiling and evaluating ------------------------------------------------------------


class Compiled:
    """A checked jq program; ``evaluate`` binds data and ``$variables`` per call."""

    def __init__(self, source: str, variables: frozenset[str], fast: bool) -> None:
        self.source = source
        self.variables = variables  # the $names it mentions that callers may bind
        self.fast = fast
        self._programs: dict[frozenset[str], tuple[str, Any]] = {}
        self._program(variables)  # fails now on syntax errors, not at the first run

    def evaluate(
        self, data: Any, variables: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> Any:
        """Return the first output of the program, or None when it outputs nothing."""
        results = self._run(data, variables, timeout, first=True)
        return results[0] if results else None

    def evaluate_all(
        self, data: Any, variables: Mapping[str, Any] | None = None, *, timeout: float | None = None
    ) -> list[Any]:
        """Return every output of the program."""
        return self._run(data, variables, timeout, first=False)

    def _run(
        self, data: Any, variables: Mapping[str, Any] | None, timeout: float | None, first: bool
    ) -> list[Any]:
        bound = self.variables.intersection(variables) if variables else frozenset()
        text, program = self._program(bound)
        try:
            payload = _ENCODER.encode(
                {"d": data, "v": {n: variables[n] for n in bound}}
                if variables
                else {"d": data, "v": {}}
            )
        except (TypeError, ValueError) as exc:
            raise ExpressionError(f"expression input is not JSON: {exc}", self.source) from exc
        if not self.fast:
            return HELPER.run(text, payload, first, timeout or _default_timeout, self.source)
        try:
            if first:
                value = next(iter(program.input_text(payload)), _NOTHING)
                return [] if value is _NOTHING else [value]
            return list(program.input_text(payload))
        except ValueError as exc:
            raise ExpressionError(str(exc), self.source) from exc

    def _program(self, bound: frozenset[str]) -> tuple[str, Any]:
        # One libjq program per set of bound names; their values arrive with the input.
        found = self._programs.get(bound)
        if found is None:
            text = _wrap(self.source, bound)
            try:
                found = (text, jq.compile(text))
            except ValueError as exc:
                raise ExpressionError(
                    _compile_message(self.source, bound, exc), self.source
                ) from exc
            self._programs[bound] = found
        return found

    def __repr__(self) -> str:
        return f"Compiled({self.source!r}, fast={self.fast})"


@functools.lru_cache(maxsize=4096)
def compile_expression(source: str) -> Compiled:
    """Compile a jq program once (cached); ExpressionError if it is invalid or refused."""
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("empty expression", str(source or ""))
    try:
        sequences = tokenize(source)
    except LexError:
        raise ExpressionError(_compile_message(source, frozenset(), None), source) from None
    facts = analyse(sequences)
    refused = sorted(facts.refused)
    if refused:
        raise ExpressionError(
            f"{refused[0]} is not allowed in expressions: they read only their input and "
            f"variables (in {source!r})",
            source,
        )
    names = frozenset(n for n in facts.variables if n != "ENV" and not n.startswith("__"))
    return Compiled(source, names, facts.fast)


def evaluate(
    source: str,
    data: Any,
    variables: Mapping[str, Any] | None = None,
    *,
    timeout: float | None = None,
) -> Any:
    """Compile (cached) and return the first output of ``source`` on ``data``."""
    return compile_expression(source).evaluate(data, variables, timeout=timeout)


def check_syntax(source: str, variables: Any = None) -> str | None:
    """None when ``source`` compiles, else why not; given ``variables`` (names), free
    ``$names`` outside them are errors too."""
    try:
        compiled = compile_expression(source)
        if variables is not None:
            compiled._program(compiled.variables.intersection(variables))
    except ExpressionError as exc:
        return exc.detail
    return None


_PRELUDE = (
    "def env: {}; def input_filename: null; "
    + "".join(
        f'def {name}: error("{name} is not allowed"); '
        for name in (
            "input",
            "inputs",
            "input_line_number",
            "debug",
            "stderr",
            "halt",
            "halt_error",
            "modulemeta",
            "get_search_list",
            "get_jq_origin",
            "get_prog_origin",
        )
    )
    + 'def debug(m): error("debug is not allowed"); '
    + 'def halt_error(c): error("halt_error is not allowed"); '
    + "{} as $ENV | . as $__cf | "
)


def _wrap(source: str, bound: frozenset[str]) -> str:
    binds = "".join(f"$__cf.v.{name} as ${name} | " for name in sorted(bound))
    # Newlines keep a trailing comment in ``source`` from swallowing the closing paren.
    return f"{_PRELUDE}{binds}$__cf.d | (\n{source}\n)"


def _compile_message(source: str, bound: frozenset[str], error: ValueError | None) -> str:
    # Compile the bare source for libjq's message, so positions match what the user wrote.
    try:
        jq.compile(source, args={name: None for name in bound})
        detail = str(error) if error else "could not parse"
    except ValueError as exc:
        detail = str(exc)
    lines = [
        line.removeprefix("jq: error: ").replace(" at <top-level>", "").rstrip(":")
        for line in detail.splitlines()
        if line.startswith("jq: error: ")
    ]
    return f"invalid expression {source!r}: {'; '.join(lines) or detail}"


# --- templates ---------------------------------------------------------------------------


def is_expression_string(value: Any) -> bool:
    """True when the whole string (bar surrounding whitespace) is one ``${ expr }``."""
    return isinstance(value, str) and _whole_expression(value) is not None


def strip_expression(value: str) -> str:
    """The expression inside ``${ }``; a string without the wrapper comes back stripped."""
    inner = _whole_expression(value)
    return (inner if inner is not None else value).strip()


def render(
    template: Any,
    data: Any,
    variables: Mapping[str, Any] | None = None,
    *,
    timeout: float | None = None,
) -> Any:
    """Evaluate every ``${ }`` in a template of dicts, lists and strings."""
    if isinstance(template, dict):
        return {
            key: render(value, data, variables, timeout=timeout) for key, value in template.items()
        }
    if isinstance(template, list):
        return [render(value, data, variables, timeout=timeout) for value in template]
    if not isinstance(template, str) or "${" not in template:
        return template
    pieces = _template_pieces(template)
    whole = _whole_expression(template)
    if whole is not None:
        return evaluate(whole, data, variables, timeout=timeout)
    out = []
    for is_expr, text in pieces:
        if not is_expr:
            out.append(text)
            continue
        value = evaluate(text, data, variables, timeout=timeout)
        out.append(
            value
            if isinstance(value, str)
            else json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        )
    return "".join(out)


def template_syntax_errors(template: Any, pointer: str = "") -> list[tuple[str, str]]:
    """(JSON pointer within the template, message) for every ``${ }`` that is invalid."""
    errors: list[tuple[str, str]] = []
    for where, text in _template_strings(template, pointer):
        try:
            pieces = _template_pieces(text)
        except ExpressionError as exc:
            errors.append((where, exc.detail))
            continue
        errors.extend(
            (where, message)
            for is_expr, src in pieces
            if is_expr and (message := check_syntax(src)) is not None
        )
    return errors


def referenced_steps(template: Any) -> set[str] | None:
    """Step ids that the template's ``${ }`` read as ``.steps.<id>``; None if it could read any."""
    steps: set[str] = set()
    for _, text in _template_strings(template, ""):
        try:
            pieces = _template_pieces(text)
        except ExpressionError:
            return None
        for is_expr, src in pieces:
            found = referenced_steps_in_expression(src) if is_expr else set()
            if found is None:
                return None
            steps |= found
    return steps


def _template_strings(template: Any, pointer: str) -> Iterator[tuple[str, str]]:
    if isinstance(template, dict):
        for key, value in template.items():
            escaped = str(key).replace("~", "~0").replace("/", "~1")
            yield from _template_strings(value, f"{pointer}/{escaped}")
    elif isinstance(template, list):
        for index, value in enumerate(template):
            yield from _template_strings(value, f"{pointer}/{index}")
    elif isinstance(template, str) and "${" in template:
        yield pointer, template


def _whole_expression(value: str) -> str | None:
    if "${" not in value:
        return None
    try:
        pieces = _template_pieces(value)
    except ExpressionError:
        return None
    exprs = [text for is_expr, text in pieces if is_expr]
    if len(exprs) == 1 and all(text.isspace() for is_expr, text in pieces if not is_expr):
        return exprs[0]
    return None


@functools.lru_cache(maxsize=4096)
def _template_pieces(template: str) -> tuple[tuple[bool, str], ...]:
    """Split a template string into (is_expression, text) pieces."""
    pieces: list[tuple[bool, str]] = []
    start = 0
    while (opening := template.find("${", start)) != -1:
        try:
            _, end = lex(template, opening + 2, stop="}")
        except LexError:
            raise ExpressionError(f"unterminated ${{ }} in {template!r}", template) from None
        if opening > start:
            pieces.append((False, template[start:opening]))
        pieces.append((True, template[opening + 2 : end].strip()))
        start = end + 1
    if start < len(template):
        pieces.append((False, template[start:]))
    return tuple(pieces)
