"""Serverless Workflow 1.0 documents: every problem at once, then a skeleton graph.

``validate_serverless`` checks the official JSON Schema (see ``sw_schema``), then what a
schema cannot say: flow directives must name a task of their own list, task names are
unique within a list, references into ``use`` must exist, the DSL must be 1.0.x, and
runtime expressions must compile. ``load_serverless`` turns a valid document into a
``Workflow``: one ``sw_task`` node per top-level task, in order, between start and end.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from ..errors import InvalidWorkflow, Problem
from ..graph import Edge, Node, Workflow
from .sw_schema import schema_problems

__all__ = ["BUILTIN_CALLS", "FLOW_DIRECTIVES", "load_serverless", "validate_serverless"]

BUILTIN_CALLS = frozenset({"http", "openapi", "grpc", "asyncapi", "a2a", "mcp"})
FLOW_DIRECTIVES = frozenset({"continue", "exit", "end"})

_SUPPORTED_DSL = re.compile(r"^1\.0\.\d+(?:[-+].*)?$")
_CATALOG_CALL = re.compile(r"^[^:@/]+:[^:@/]+@(?P<catalog>[^:@/]+)$")  # name:version@catalog
_WHOLE_EXPRESSION = re.compile(r"^\s*\$\{(?P<body>.*)\}\s*$", re.DOTALL)

# Where a call to a built-in protocol may name an authentication policy.
_CALL_AUTHENTICATIONS = (
    ("with", "authentication"),  # openapi, asyncapi
    ("with", "endpoint", "authentication"),  # http
    ("with", "document", "endpoint", "authentication"),  # openapi, asyncapi
    ("with", "service", "authentication"),  # grpc
    ("with", "proto", "endpoint", "authentication"),  # grpc
    ("with", "server", "authentication"),  # a2a
    ("with", "agentCard", "endpoint", "authentication"),  # a2a
    ("with", "transport", "http", "endpoint", "authentication"),  # mcp
)
# Where any task (and the workflow itself) may: external schemas and scripts.
_RESOURCE_AUTHENTICATIONS = (
    ("input", "schema", "resource", "endpoint", "authentication"),
    ("output", "schema", "resource", "endpoint", "authentication"),
    ("export", "schema", "resource", "endpoint", "authentication"),
    ("run", "script", "source", "endpoint", "authentication"),
)
# Fields that hold a runtime expression even without the ${ } wrapper.
_EXPRESSION_FIELDS = (
    ("if",),
    ("input", "from"),
    ("output", "as"),
    ("export", "as"),
    ("for", "in"),
    ("while",),
    ("set",),
)


def validate_serverless(document: Any) -> list[Problem]:
    """Every problem in a Serverless Workflow document, schema violations first."""
    problems = schema_problems(document)
    if isinstance(document, dict):
        problems += _Semantics(document).check()
    return _with_node_ids(problems, document)


def load_serverless(document: Any) -> Workflow:
    """Validate ``document`` and return its graph; InvalidWorkflow lists every problem."""
    problems = validate_serverless(document)
    if problems:
        raise InvalidWorkflow(problems)
    entries = list(_entries(document["do"], "/do"))
    if _sequential(entries):
        tasks = [
            _parked_wait(pointer, name, task, 0 < i < len(entries) - 1)
            or Node(
                pointer, "sw_task", {"name": name, "task": task, "pointer": pointer}, label=name
            )
            for i, (pointer, name, task) in enumerate(entries)
        ]
    else:
        # Jumps a chain cannot draw (backwards, or past the next task): one node runs the
        # whole root list, flow directives included.
        whole = {"name": "do", "task": {"do": document["do"]}, "pointer": "/do"}
        tasks = [Node("/do", "sw_task", whole, label=document["document"]["name"])]
    # Each sw_task passes on an envelope {output, context, flow}; the last one's output is
    # the workflow output (after the workflow's output.as and output schema).
    end = Node("end", "end", {"output": "${ .node.input.output }"})
    nodes = (Node("start", "start"), *tasks, end)
    edges = tuple(Edge(a.id, b.id) for a, b in zip(nodes, nodes[1:], strict=False))
    return Workflow(
        nodes=nodes,
        edges=edges,
        name=document["document"]["name"],
        format="serverless",
        meta={"document": document},
    )


def _parked_wait(pointer: str, name: str, task: Any, inner: bool) -> Node | None:
    """A plain top-level `wait` between two tasks becomes the engine's durable `delay`.

    Its step parks in the database (`waiting` + wake_at) and the ticker resumes it, so the
    wait survives worker restarts and holds no worker thread; the envelope passes through
    unchanged, as a wait's output is its input. Waits with `if`, data filters, flow
    directives or a computed duration stay inside the interpreter.
    """
    if not inner or not isinstance(task, dict) or set(task) != {"wait"}:
        return None
    from engine.serverless.durations import to_seconds

    try:
        seconds = to_seconds(task["wait"])
    except ValueError:
        return None
    return Node(pointer, "delay", {"seconds": seconds}, label=name)


def _sequential(entries: list[tuple[str, str, Any]]) -> bool:
    """Whether every flow directive of the root list goes to the next task (or ends last)."""
    for index, (_, _, task) in enumerate(entries):
        following = entries[index + 1][1] if index + 1 < len(entries) else None
        allowed = {None, "continue", following} | ({"end", "exit"} if following is None else set())
        targets = [_get(task, "then")]
        for item in _list(_get(task, "switch")):
            targets += [_get(case, "then") for case in _dict(item).values()]
        if any(target not in allowed for target in targets):
            return False
    return True


class _Semantics:
    """The checks the JSON Schema cannot express, written to survive schema-invalid input."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        use = _get(document, "use")
        self.use = {
            section: set(_dict(_get(use, section)))
            for section in (
                "functions",
                "errors",
                "authentications",
                "retries",
                "timeouts",
                "catalogs",
            )
        }
        self.problems: list[Problem] = []
        self.expressions: dict[str, str] = {}  # pointer -> expression, wrapped or bare

    def check(self) -> list[Problem]:
        self._dsl_version(_get(_get(self.document, "document"), "dsl"))
        self._task_list(self.document.get("do"), "/do")
        use = _dict(self.document.get("use"))
        for name, function in _dict(use.get("functions")).items():
            self._task(function, f"/use/functions/{_escape(name)}", siblings=None)
        for index, item in enumerate(_list(use.get("extensions"))):
            for name, extension in _dict(item).items():
                pointer = f"/use/extensions/{index}/{_escape(name)}"
                self._expression(_get(extension, "when"), f"{pointer}/when")
                for hook in ("before", "after"):
                    self._task_list(_get(extension, hook), f"{pointer}/{hook}")
        for name, retry in _dict(use.get("retries")).items():
            self._retry_policy(retry, f"/use/retries/{_escape(name)}")
        for name, catalog in _dict(use.get("catalogs")).items():
            path = ("endpoint", "authentication")
            self._authentication(_dig(catalog, path), _join(f"/use/catalogs/{_escape(name)}", path))
        self._reference(self.document.get("timeout"), "/timeout", "timeouts", "timeout")
        for path in _RESOURCE_AUTHENTICATIONS:
            self._authentication(_dig(self.document, path), _join("", path))
        self._expression(_dig(self.document, ("input", "from")), "/input/from")
        self._expression(_dig(self.document, ("output", "as")), "/output/as")
        self._runtime_expressions()
        return self.problems

    def _problem(self, pointer: str, message: str) -> None:
        self.problems.append(Problem(pointer, message))

    def _dsl_version(self, dsl: Any) -> None:
        if isinstance(dsl, str) and not _SUPPORTED_DSL.match(dsl):
            self._problem(
                "/document/dsl",
                f"unsupported DSL version {dsl!r}: Canvasflow runs Serverless Workflow 1.0.x",
            )

    def _task_list(self, tasks: Any, pointer: str) -> None:
        entries = list(_entries(tasks, pointer))
        first: dict[str, str] = {}
        for task_pointer, name, _ in entries:
            if name in first:
                self._problem(
                    task_pointer,
                    f"duplicate task name {name!r} in this list (first at {first[name]})",
                )
            first.setdefault(name, task_pointer)
        for task_pointer, _, task in entries:
            self._task(task, task_pointer, siblings=set(first))

    def _task(self, task: Any, pointer: str, siblings: set[str] | None) -> None:
        """One task; ``siblings`` names its list's tasks (None: not in a list)."""
        if not isinstance(task, dict):
            return
        if siblings is not None:
            self._flow(task.get("then"), f"{pointer}/then", siblings)
        for path in _EXPRESSION_FIELDS:
            self._expression(_dig(task, path), _join(pointer, path))
        for index, item in enumerate(_list(task.get("switch"))):
            for case_name, case in _dict(item).items():
                case_pointer = f"{pointer}/switch/{index}/{_escape(case_name)}"
                self._expression(_get(case, "when"), f"{case_pointer}/when")
                if siblings is not None:
                    self._flow(_get(case, "then"), f"{case_pointer}/then", siblings)

        call = task.get("call")
        if isinstance(call, str):
            self._call(call, f"{pointer}/call")
        paths = _RESOURCE_AUTHENTICATIONS + (_CALL_AUTHENTICATIONS if call in BUILTIN_CALLS else ())
        for path in paths:
            self._authentication(_dig(task, path), _join(pointer, path))
        self._reference(
            _dig(task, ("raise", "error")), f"{pointer}/raise/error", "errors", "raise.error"
        )
        self._reference(task.get("timeout"), f"{pointer}/timeout", "timeouts", "timeout")
        catch = _dict(task.get("catch"))
        for field in ("when", "exceptWhen"):
            self._expression(catch.get(field), f"{pointer}/catch/{field}")
        retry = catch.get("retry")
        self._reference(retry, f"{pointer}/catch/retry", "retries", "retry")
        self._retry_policy(retry, f"{pointer}/catch/retry")

        for path in (
            ("do",),
            ("fork", "branches"),
            ("try",),
            ("catch", "do"),
            ("listen", "foreach", "do"),
            ("with", "subscription", "foreach", "do"),
        ):
            if path[0] != "with" or call == "asyncapi":
                self._task_list(_dig(task, path), _join(pointer, path))

    def _flow(self, target: Any, pointer: str, siblings: set[str]) -> None:
        if isinstance(target, str) and target not in FLOW_DIRECTIVES | siblings:
            names = sorted(siblings)
            known = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
            self._problem(
                pointer,
                f"then {target!r} names no task of the same list "
                f"(tasks: {known}) nor a flow directive (continue, exit, end)",
            )

    def _call(self, call: str, pointer: str) -> None:
        if call in BUILTIN_CALLS or call in self.use["functions"]:
            return
        catalog = _CATALOG_CALL.match(call)
        if catalog and catalog["catalog"] not in self.use["catalogs"] | {"default"}:
            self._problem(
                pointer,
                f"call {call!r} names catalog {catalog['catalog']!r}, "
                "which is not defined in use.catalogs",
            )
        elif "@" not in call:  # name:version@catalog and URI@version are resolved elsewhere
            self._problem(
                pointer,
                f"call {call!r} is neither a built-in call "
                f"({', '.join(sorted(BUILTIN_CALLS))}) nor defined in "
                "use.functions",
            )

    def _reference(self, value: Any, pointer: str, section: str, what: str) -> None:
        if isinstance(value, str) and value not in self.use[section]:
            self._problem(pointer, f"{what} {value!r} is not defined in use.{section}")

    def _authentication(self, value: Any, pointer: str) -> None:
        if isinstance(value, dict) and isinstance(value.get("use"), str):
            value, pointer = value["use"], f"{pointer}/use"
        self._reference(value, pointer, "authentications", "authentication")

    def _retry_policy(self, policy: Any, pointer: str) -> None:
        for field in ("when", "exceptWhen"):
            self._expression(_get(policy, field), f"{pointer}/{field}")

    def _expression(self, value: Any, pointer: str) -> None:
        if isinstance(value, str):
            self.expressions[pointer] = value

    def _runtime_expressions(self) -> None:
        check = _syntax_checker()
        if check is None:
            return
        for pointer, text in _wrapped_strings(self.document, ""):
            self.expressions.setdefault(pointer, text)
        for pointer, text in self.expressions.items():
            source = _expression_source(text)
            error = check(source) if source is not None else None
            if error:
                self._problem(pointer, f"invalid runtime expression: {error}")


def _syntax_checker() -> Callable[[str], str | None] | None:
    """engine.expressions.check_syntax, or None while that module does not exist."""
    name = f"{__package__.rpartition('.')[0]}.expressions"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None
    check: Callable[[str], str | None] | None = getattr(module, "check_syntax", None)
    return check


def _wrapped_strings(value: Any, pointer: str) -> Iterator[tuple[str, str]]:
    """Every string in ``value`` that is wholly one ``${ ... }``, with its pointer."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _wrapped_strings(item, f"{pointer}/{_escape(key)}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _wrapped_strings(item, f"{pointer}/{index}")
    elif isinstance(value, str) and "${" in value and _expression_source(value) is not None:
        yield pointer, value


def _expression_source(text: str) -> str | None:
    """The jq inside ``${ }``, a bare expression as is, None for text with ``${ }`` in it."""
    wrapped = _WHOLE_EXPRESSION.match(text)
    if wrapped and "${" not in wrapped["body"]:
        return wrapped["body"].strip()
    return None if "${" in text else text.strip()


def _with_node_ids(problems: list[Problem], document: Any) -> list[Problem]:
    """Tag each problem inside a top-level task with that task's node id."""
    ids = [pointer for pointer, _, _ in _entries(_get(document, "do"), "/do")]

    def owner(pointer: str) -> str | None:
        return next((i for i in ids if pointer == i or pointer.startswith(i + "/")), None)

    return [replace(p, node_id=owner(p.pointer)) if p.node_id is None else p for p in problems]


def _entries(tasks: Any, pointer: str) -> Iterator[tuple[str, str, Any]]:
    """(pointer, name, task) for each well-formed ``- name: task`` item of a task list."""
    for index, item in enumerate(_list(tasks)):
        if isinstance(item, dict) and len(item) == 1:
            [(name, task)] = item.items()
            yield f"{pointer}/{index}/{_escape(str(name))}", str(name), task


def _get(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def _dig(value: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        value = _get(value, key)
    return value


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _join(pointer: str, path: tuple[str, ...]) -> str:
    return pointer + "".join(f"/{_escape(key)}" for key in path)


def _escape(key: Any) -> str:
    return str(key).replace("~", "~0").replace("/", "~1")
