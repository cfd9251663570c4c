"""jq expressions: compiled once, sandboxed, bounded in time.

An expression reads its input and the variables it is given, nothing else. Every program
runs behind a prelude that hides the process environment (``env`` and ``$ENV`` are ``{}``)
and shadows the builtins that read files, stdin or stderr; ``import``/``include`` and those
builtins are refused at compile time.

libjq runs in C and cannot be interrupted, so a program that could loop or blow up (it
defines functions, reduces, multiplies, assigns, calls a builtin outside ``_FAST_BUILTINS``
such as ``range``/``repeat``/``until``, or nests many generators) runs in a persistent
helper process under a wall-clock timeout; the helper is killed and restarted when it
overruns. Everything else runs inline, which is ~100x faster.

Templates: a string whose whole content is ``${ expr }`` becomes the expression's value;
``${ expr }`` inside a longer string is interpolated as text.
"""

from __future__ import annotations

import atexit
import functools
import json
import math
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import jq

from engine.errors import ExpressionError

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
            return _HELPER.run(text, payload, first, timeout or _default_timeout, self.source)
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
        sequences = _tokenize(source)
    except _LexError:
        raise ExpressionError(_compile_message(source, frozenset(), None), source) from None
    facts = _analyse(sequences)
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

# Called by name (or keyword) these read outside the sandbox or write to stderr.
_REFUSED = frozenset(
    {
        "import",
        "include",
        "$__loc__",
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
    }
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
            _, end = _lex(template, opening + 2, stop="}")
        except _LexError:
            raise ExpressionError(f"unterminated ${{ }} in {template!r}", template) from None
        if opening > start:
            pieces.append((False, template[start:opening]))
        pieces.append((True, template[opening + 2 : end].strip()))
        start = end + 1
    if start < len(template):
        pieces.append((False, template[start:]))
    return tuple(pieces)


# --- static analysis ---------------------------------------------------------------------


class _Token(NamedTuple):
    kind: str  # num, field, var, format, ident, op, str
    value: Any  # a str's constant value (None when interpolated); else the token's text
    inner: tuple[list[_Token], ...] = ()  # code inside a string's \( ) interpolations


class _LexError(Exception):
    pass


_TOKEN = re.compile(
    r"""
      (?P<ws>\s+)
    | (?P<comment>\#(?:[^\\\n]|\\[\s\S])*)
    | (?P<num>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<field>\.[A-Za-z_]\w*)
    | (?P<var>\$[A-Za-z_]\w*(?:::[A-Za-z_]\w*)*)
    | (?P<format>@\w+)
    | (?P<ident>[A-Za-z_]\w*(?:::[A-Za-z_]\w*)*)
    | (?P<op>\?//|//=|\.\.|[!=<>]=|[|+\-*/%]=|//|[.\[\]{}()|,:;=<>+\-*/%?])
    | (?P<quote>")
""",
    re.VERBOSE,
)
_OPENERS = {"(": ")", "[": "]", "{": "}"}
_KEYWORDS = frozenset(
    {
        "if",
        "then",
        "elif",
        "else",
        "end",
        "as",
        "def",
        "reduce",
        "foreach",
        "try",
        "catch",
        "label",
        "break",
        "import",
        "include",
        "and",
        "or",
        "__loc__",
    }
)
# Builtins that always finish quickly on JSON input; a call to anything else, user
# definitions included, sends the program to the helper process.
_FAST_BUILTINS = frozenset(
    """
    IN INDEX JOIN abs acos acosh add all any arrays ascii_downcase ascii_upcase asin asinh
    atan atan2 atanh booleans bsearch builtins cbrt ceil contains copysign cos cosh del
    delpaths drem empty endswith env erf erfc error exp exp10 exp2 explode expm1 fabs false
    fdim finites first flatten floor fma fmax fmin fmod format frexp from_entries fromdate
    fromdateiso8601 fromjson gamma getpath gmtime group_by has have_decnum
    have_literal_numbers hypot implode in index indices infinite input_filename inside isempty
    isfinite isinfinite isnan isnormal iterables j0 j1 jn join keys keys_unsorted last ldexp
    length lgamma lgamma_r localtime log log10 log1p log2 logb ltrim ltrimstr map map_values
    max max_by min min_by mktime modf nan nearbyint nextafter nexttoward normals not now nth
    null nulls numbers objects path paths pick pow remainder reverse rindex rint round rtrim
    rtrimstr scalars scalb scalbln select significand sin sinh sort sort_by sqrt startswith
    strflocaltime strftime strings strptime tan tanh tgamma to_entries toboolean todate
    todateiso8601 tojson tonumber tostream tostring transpose trim trimstr true trunc type
    unique unique_by utf8bytelength values with_entries y0 y1 yn
""".split()
)
_SLOW_KEYWORDS = frozenset({"def", "reduce", "foreach"})
_SLOW_OPS = frozenset({"*", "*=", "=", "|=", "+=", "-=", "/=", "%=", "//="})
_MAX_FAST_GENERATORS = 2  # more nested generators can multiply into billions of outputs
_TERM_ENDS = frozenset({"num", "field", "var", "str", "format"})


def _tokenize(source: str) -> list[list[_Token]]:
    """The program's token sequence followed by those of every string interpolation."""
    tokens, _ = _lex(source, 0, stop=None)
    return list(_sequences(tokens))


def _sequences(tokens: list[_Token]) -> Iterator[list[_Token]]:
    yield tokens
    for token in tokens:
        for inner in token.inner:
            yield from _sequences(inner)


def _lex(src: str, pos: int, stop: str | None) -> tuple[list[_Token], int]:
    """Tokens from ``pos`` to the unmatched ``stop`` (whose index is returned) or the end."""
    tokens: list[_Token] = []
    closers: list[str] = []
    while pos < len(src):
        match = _TOKEN.match(src, pos)
        if match is None:
            raise _LexError(f"unexpected character at {pos}")
        kind, text = match.lastgroup or "", match.group()
        if kind == "quote":
            token, pos = _lex_string(src, match.end())
            tokens.append(token)
            continue
        pos = match.end()
        if kind in ("ws", "comment"):
            continue
        if text in _OPENERS:
            closers.append(_OPENERS[text])
        elif text in ")]}":
            if not closers:
                if text == stop:
                    return tokens, match.start()
                raise _LexError(f"unbalanced {text}")
            if closers.pop() != text:
                raise _LexError(f"mismatched {text}")
        tokens.append(_Token(kind, text))
    if stop is not None or closers:
        raise _LexError("unexpected end")
    return tokens, pos


def _lex_string(src: str, pos: int) -> tuple[_Token, int]:
    start, inner, raw = pos, [], True
    while pos < len(src):
        char = src[pos]
        if char == '"':
            value = None
            if raw:
                try:
                    value = json.loads(f'"{src[start:pos]}"', strict=False)
                except ValueError:
                    pass
            return _Token("str", value, tuple(inner)), pos + 1
        if char == "\\" and src.startswith("\\(", pos):
            tokens, pos = _lex(src, pos + 2, stop=")")
            inner.append(tokens)
            raw = False
        elif char == "\\":
            pos += 1
        pos += 1
    raise _LexError("unterminated string")


class _Facts(NamedTuple):
    refused: set[str]
    variables: set[str]
    fast: bool


def _analyse(sequences: list[list[_Token]]) -> _Facts:
    refused: set[str] = set()
    variables: set[str] = set()
    fast = True
    generators = 0
    for tokens in sequences:
        stack: list[str] = []
        for i, token in enumerate(tokens):
            kind, text = token.kind, token.value
            prev = tokens[i - 1].value if i and tokens[i - 1].kind in ("op", "ident") else None
            if kind == "var":
                variables.add(text[1:])
                refused.update({text} & _REFUSED)
            elif kind == "ident":
                if stack and stack[-1] == "{" and prev in ("{", ","):
                    continue  # an object key, {name: ...} or {name}
                refused.update({text} & _REFUSED)
                if text in _SLOW_KEYWORDS:
                    fast = False
                elif text not in _KEYWORDS and not _is_fast_call(tokens, i):
                    fast = False
            elif kind == "op":
                if text in _OPENERS:
                    stack.append(text)
                elif text in ")]}" and stack:
                    stack.pop()
                if text in _SLOW_OPS:
                    fast = False
                elif text == ".." or (text == "," and (not stack or stack[-1] == "(")):
                    generators += 1
                elif text == "]" and prev == "[" and i >= 2 and _ends_term(tokens[i - 2]):
                    generators += 1  # an iteration, .[] or .a[]
    return _Facts(refused, variables, fast and generators <= _MAX_FAST_GENERATORS)


def _is_fast_call(tokens: list[_Token], i: int) -> bool:
    name = tokens[i].value
    if name not in _FAST_BUILTINS:
        return name == "split" and _arity(tokens, i) == 1  # split/2 takes a regex
    return True


def _arity(tokens: list[_Token], i: int) -> int:
    if i + 1 >= len(tokens) or tokens[i + 1].value != "(":
        return 0
    depth, arity = 0, 1
    for token in tokens[i + 1 :]:
        if token.kind != "op":
            continue
        if token.value in _OPENERS:
            depth += 1
        elif token.value in ")]}":
            depth -= 1
            if depth == 0:
                break
        elif token.value == ";" and depth == 1:
            arity += 1
    return arity


def _ends_term(token: _Token) -> bool:
    if token.kind == "ident":
        return token.value not in _KEYWORDS
    return token.kind in _TERM_ENDS or token.value in (".", "]", ")", "}", "?")


def referenced_steps_in_expression(source: str) -> set[str] | None:
    """Step ids a bare jq expression reads as ``.steps.<id>``; None if it could read any."""
    try:
        sequences = _tokenize(source)
    except _LexError:
        return None
    steps: set[str] = set()
    for tokens in sequences:
        for i, token in enumerate(tokens):
            if token.value == "..":
                return None
            end = _steps_access(tokens, i)
            if end is None:
                continue
            step = _constant_key(tokens, end + (tokens[end : end + 1] == [_Token("op", "?")]))
            if step is None:
                return None
            steps.add(step)
    return steps


def _steps_access(tokens: list[_Token], i: int) -> int | None:
    """If ``.steps`` (or ``."steps"``, ``.["steps"]``) starts at ``i``, the index after it."""
    if i and _ends_term(tokens[i - 1]):
        return None  # .input.steps is some other object's field
    if tokens[i] == _Token("field", ".steps"):
        return i + 1
    if tokens[i].value == "." and _constant_key(tokens, i) == "steps":
        return i + (2 if tokens[i + 1].kind == "str" else 4)
    return None


def _constant_key(tokens: list[_Token], i: int) -> str | None:
    """The key of ``.id``, ``."id"``, ``["id"]`` or ``.["id"]`` at ``i``; else None."""
    shape = "".join(_shape(token) for token in tokens[i : i + 4])
    if shape.startswith("F"):
        key = tokens[i].value[1:]
    elif shape.startswith((".S", "[S]")):
        key = tokens[i + 1].value
    elif shape.startswith(".[S]"):
        key = tokens[i + 2].value
    else:
        key = None
    return key if isinstance(key, str) else None  # an interpolated "\(...)" is not constant


def _shape(token: _Token) -> str:
    if token.kind in ("field", "str"):
        return token.kind[0].upper()
    return token.value if token.kind == "op" and token.value in (".", "[", "]") else "?"


# --- the helper process ------------------------------------------------------------------

_HELPER_MEMORY_BYTES = 1 << 30
_HELPER_SCRIPT = f"""
import json, resource, signal, sys
import jq
resource.setrlimit(resource.RLIMIT_AS, ({_HELPER_MEMORY_BYTES}, {_HELPER_MEMORY_BYTES}))
programs = {{}}
print("ready", flush=True)
for line in sys.stdin:
    text, payload, first, alarm = json.loads(line)
    signal.alarm(alarm)  # dies by SIGALRM should its parent be gone and the program loop
    try:
        if text not in programs:
            if len(programs) > 256:
                programs.clear()
            programs[text] = jq.compile(text)
        results = []
        for value in programs[text].input_text(payload):
            results.append(value)
            if first:
                break
        reply = [True, results]
    except Exception as exc:
        reply = [False, str(exc)]
    signal.alarm(0)
    print(json.dumps(reply), flush=True)
"""


class _Helper:
    """One persistent child process running the programs that might not finish."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._pid = 0  # the process that started _proc; a forked child starts its own
        self._buffer = b""

    def run(self, text: str, payload: str, first: bool, timeout: float, source: str) -> list[Any]:
        request = json.dumps([text, payload, first, math.ceil(timeout) + 5]) + "\n"
        with self._lock:
            proc = self._started()
            try:
                assert proc.stdin is not None
                proc.stdin.write(request.encode())
                proc.stdin.flush()
                line = self._read_line(time.monotonic() + timeout)
            except OSError:
                line = b""
            if not line:
                self.stop()
                if line is None:
                    raise ExpressionError(f"expression timed out after {float(timeout)}s", source)
                raise ExpressionError("expression evaluation crashed (out of memory?)", source)
        ok, value = json.loads(line)
        if not ok:
            raise ExpressionError(value, source)
        return list(value)

    def _started(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._pid == os.getpid() and self._proc.poll() is None:
            return self._proc
        # An empty environment and / as working directory: nothing to read even if the
        # prelude were bypassed.
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _HELPER_SCRIPT],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={},
            cwd="/",
        )
        self._pid, self._buffer = os.getpid(), b""
        if self._read_line(time.monotonic() + 30) != b"ready":
            self.stop()
            raise ExpressionError("could not start the expression helper process")
        return self._proc

    def _read_line(self, deadline: float) -> bytes | None:
        """The next line, b"" if the child died, None once the deadline passes."""
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b""
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def stop(self) -> None:
        """Kill the child process, if any; the next run starts a new one."""
        proc, self._proc = self._proc, None
        if proc is not None and self._pid == os.getpid():
            proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()

    def _forget_after_fork(self) -> None:
        # The child of a fork shares the parent's pipes: drop them, never kill its helper.
        self._lock = threading.Lock()
        proc, self._proc, self._buffer = self._proc, None, b""
        if proc is not None:
            for stream in (proc.stdin, proc.stdout):
                if stream is not None:
                    stream.close()


_HELPER = _Helper()
os.register_at_fork(after_in_child=_HELPER._forget_after_fork)
atexit.register(_HELPER.stop)
