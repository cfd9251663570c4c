"""A lexical scan of jq programs: what a program may do, before libjq ever runs it.

jq has no AST in its Python bindings, so the sandbox decides from tokens: which builtins
and keywords a program uses (refused ones, and those that could loop or explode, which
send it to the helper process), which variables it reads, and which ``.steps.<id>`` it
touches (so a worker reads only those step rows).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, NamedTuple

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


class Token(NamedTuple):
    kind: str  # num, field, var, format, ident, op, str
    value: Any  # a str's constant value (None when interpolated); else the token's text
    inner: tuple[list[Token], ...] = ()  # code inside a string's \( ) interpolations


class LexError(Exception):
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


def tokenize(source: str) -> list[list[Token]]:
    """The program's token sequence followed by those of every string interpolation."""
    tokens, _ = lex(source, 0, stop=None)
    return list(_sequences(tokens))


def _sequences(tokens: list[Token]) -> Iterator[list[Token]]:
    yield tokens
    for token in tokens:
        for inner in token.inner:
            yield from _sequences(inner)


def lex(src: str, pos: int, stop: str | None) -> tuple[list[Token], int]:
    """Tokens from ``pos`` to the unmatched ``stop`` (whose index is returned) or the end."""
    tokens: list[Token] = []
    closers: list[str] = []
    while pos < len(src):
        match = _TOKEN.match(src, pos)
        if match is None:
            raise LexError(f"unexpected character at {pos}")
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
                raise LexError(f"unbalanced {text}")
            if closers.pop() != text:
                raise LexError(f"mismatched {text}")
        tokens.append(Token(kind, text))
    if stop is not None or closers:
        raise LexError("unexpected end")
    return tokens, pos


def _lex_string(src: str, pos: int) -> tuple[Token, int]:
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
            return Token("str", value, tuple(inner)), pos + 1
        if char == "\\" and src.startswith("\\(", pos):
            tokens, pos = lex(src, pos + 2, stop=")")
            inner.append(tokens)
            raw = False
        elif char == "\\":
            pos += 1
        pos += 1
    raise LexError("unterminated string")


class Facts(NamedTuple):
    refused: set[str]
    variables: set[str]
    fast: bool


def analyse(sequences: list[list[Token]]) -> Facts:
    """What the program uses: refused names, variables, and whether it may run inline."""
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
    return Facts(refused, variables, fast and generators <= _MAX_FAST_GENERATORS)


def _is_fast_call(tokens: list[Token], i: int) -> bool:
    name = tokens[i].value
    if name not in _FAST_BUILTINS:
        return name == "split" and _arity(tokens, i) == 1  # split/2 takes a regex
    return True


def _arity(tokens: list[Token], i: int) -> int:
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


def _ends_term(token: Token) -> bool:
    if token.kind == "ident":
        return token.value not in _KEYWORDS
    return token.kind in _TERM_ENDS or token.value in (".", "]", ")", "}", "?")


def referenced_steps_in_expression(source: str) -> set[str] | None:
    """Step ids a bare jq expression reads as ``.steps.<id>``; None if it could read any."""
    try:
        sequences = tokenize(source)
    except LexError:
        return None
    steps: set[str] = set()
    for tokens in sequences:
        for i, token in enumerate(tokens):
            if token.value == "..":
                return None
            end = _steps_access(tokens, i)
            if end is None:
                continue
            step = _constant_key(tokens, end + (tokens[end : end + 1] == [Token("op", "?")]))
            if step is None:
                return None
            steps.add(step)
    return steps


def _steps_access(tokens: list[Token], i: int) -> int | None:
    """If ``.steps`` (or ``."steps"``, ``.["steps"]``) starts at ``i``, the index after it."""
    if i and _ends_term(tokens[i - 1]):
        return None  # .input.steps is some other object's field
    if tokens[i] == Token("field", ".steps"):
        return i + 1
    if tokens[i].value == "." and _constant_key(tokens, i) == "steps":
        return i + (2 if tokens[i + 1].kind == "str" else 4)
    return None


def _constant_key(tokens: list[Token], i: int) -> str | None:
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


def _shape(token: Token) -> str:
    if token.kind in ("field", "str"):
        return token.kind[0].upper()
    return token.value if token.kind == "op" and token.value in (".", "[", "]") else "?"
