"""Parse the contract's JSON DAG document (CONTRACT.md 1a) into a Workflow.

The shape is checked with a JSON Schema (``DAG_SCHEMA``, Draft 2020-12), every error
reported with a JSON pointer; the graph rules (one start, no cycle, ...) live in
``engine.validation``. ``load_dag`` runs both and reports all their problems at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator, ValidationError

from ..errors import InvalidWorkflow, Problem
from ..graph import NODE_TYPES, Edge, Node, RetryPolicy, Workflow

_STRINGS = {"type": "object", "additionalProperties": {"type": "string"}}
_POSITIVE = {"type": "number", "exclusiveMinimum": 0}


def _closed(properties: dict[str, Any], **rest: Any) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "additionalProperties": False, **rest}


def _exactly_one_of(a: str, b: str) -> dict[str, Any]:
    return {
        "oneOf": [{"required": [a]}, {"required": [b]}],
        # Read by _problems: jsonschema's own oneOf message prints both subschemas.
        "errorMessage": {"oneOf": f"needs exactly one of '{a}' or '{b}'"},
    }


_CONFIG_SCHEMAS: dict[str, dict[str, Any]] = {
    "start": _closed({}),
    "fork": _closed({}),
    "join": _closed({}),
    "end": _closed({"output": {}}),
    "action": _closed(
        {
            "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
            "url": {"type": "string", "minLength": 1},
            "headers": _STRINGS,
            "query": {"type": "object"},
            "body": {},
            "timeout_seconds": _POSITIVE,
        },
        required=["method", "url"],
    ),
    "condition": _closed(
        {"expression": {"type": "string", "minLength": 1}}, required=["expression"]
    ),
    "delay": _closed(
        {"seconds": {"type": "number", "minimum": 0}, "until": {"type": "string", "minLength": 1}},
        **_exactly_one_of("seconds", "until"),
    ),
    "transform": _closed(
        {"expression": {"type": "string", "minLength": 1}, "mapping": {"type": "object"}},
        **_exactly_one_of("expression", "mapping"),
    ),
    "webhook_response": _closed(
        {
            "status": {"type": "integer", "minimum": 100, "maximum": 599},
            "headers": _STRINGS,
            "body": {},
        }
    ),
}
# Types that cannot do anything without a config.
_CONFIG_REQUIRED = frozenset({"action", "condition", "delay", "transform"})

_RETRY = _closed(
    {
        "max_attempts": {"type": "integer", "minimum": 1},
        "initial_seconds": {"type": "number", "minimum": 0},
        "multiplier": {"type": "number", "minimum": 1},
        "max_seconds": {"type": "number", "minimum": 0},
        "jitter": {"type": "boolean"},
    }
)

# The node's own fields; what its config must hold depends on its type (_BY_TYPE).
_NODE_FIELDS = _closed(
    {
        "id": {"type": "string", "minLength": 1},
        "type": {"enum": sorted(NODE_TYPES)},
        "config": {"type": "object"},
        "retry": _RETRY,
        "timeout_seconds": _POSITIVE,
        "position": {
            "type": "object",
            "required": ["x", "y"],
            "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
        },
        "label": {"type": "string"},
    },
    required=["id", "type"],
)
_BY_TYPE: dict[str, dict[str, Any]] = {
    type_: {
        "properties": {"config": schema},
        "required": ["config"] if type_ in _CONFIG_REQUIRED else [],
    }
    for type_, schema in sorted(_CONFIG_SCHEMAS.items())
}
_NODE = {
    **_NODE_FIELDS,
    "allOf": [
        {"if": {"properties": {"type": {"const": type_}}, "required": ["type"]}, "then": then}
        for type_, then in _BY_TYPE.items()
    ],
}

_EDGE = _closed(
    {
        "source": {"type": "string", "minLength": 1},
        "target": {"type": "string", "minLength": 1},
        "when": {"enum": ["true", "false"]},
    },
    required=["source", "target"],
)

DAG_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Canvasflow DAG workflow",
    "type": "object",
    "required": ["nodes", "edges"],
    "properties": {
        "name": {"type": "string"},
        "nodes": {"type": "array", "items": _NODE},
        "edges": {"type": "array", "items": _EDGE},
    },
}

# Checking a document with DAG_SCHEMA itself costs ~240 us a node: each node tries all
# nine if/then branches. The equivalent split below checks fields and edges in one pass,
# then each node against the one branch its type selects; the tests check both agree.
_FIELDS_SCHEMA = {
    **DAG_SCHEMA,
    "properties": {**DAG_SCHEMA["properties"], "nodes": {"type": "array", "items": _NODE_FIELDS}},
}
_FIELDS_VALIDATOR = Draft202012Validator(_FIELDS_SCHEMA)
_TYPE_VALIDATORS = {type_: Draft202012Validator(then) for type_, then in _BY_TYPE.items()}


def parse_dag(document: Any) -> Workflow:
    """Check a DAG document's shape and build its Workflow; InvalidWorkflow lists every problem."""
    problems = schema_problems(document)
    if problems:
        raise InvalidWorkflow(problems)
    workflow = _build(document)
    assert workflow is not None  # a document that passed the schema always builds
    return workflow


def load_dag(document: Any) -> Workflow:
    """Parse and validate a DAG document; InvalidWorkflow lists shape and graph problems at once."""
    from ..validation import validate

    problems = schema_problems(document)
    # Graph checks still run on whatever parsed, so the user sees everything at once.
    workflow = _build(document)
    if workflow is not None:
        # Where the schema already spoke (an unknown type, a bad `when`), it said it first.
        reported = {p.pointer for p in problems}
        problems += [p for p in validate(workflow) if p.pointer not in reported]
    if problems or workflow is None:
        raise InvalidWorkflow(problems)
    return workflow


def schema_problems(document: Any) -> list[Problem]:
    """Every place where ``document`` breaks ``DAG_SCHEMA``, in document order."""
    # jsonschema still takes ~35 us a node: answer the common "all fine" with plain
    # predicates first, and ask jsonschema only to explain a document that fails them.
    if _FAST_FIELDS(document) and all(
        _FAST_BY_TYPE[t](node) for _, node, t in _typed_nodes(document)
    ):
        return []
    errors = [(error, ()) for error in _FIELDS_VALIDATOR.iter_errors(document)]
    for index, node, type_ in _typed_nodes(document):
        errors += [(error, ("nodes", index)) for error in _TYPE_VALIDATORS[type_].iter_errors(node)]
    return _problems(document, errors)


def _typed_nodes(document: Any) -> Iterator[tuple[int, dict[str, Any], str]]:
    """(index, node, type) for each node whose type selects a config schema."""
    nodes = document.get("nodes") if isinstance(document, dict) else None
    for index, node in enumerate(nodes if isinstance(nodes, list) else []):
        if (
            isinstance(node, dict)
            and isinstance(node.get("type"), str)
            and node["type"] in _BY_TYPE
        ):
            yield index, node, node["type"]


def _problems(
    document: Any, errors: Iterable[tuple[ValidationError, tuple[str | int, ...]]]
) -> list[Problem]:
    """Problems for (jsonschema error, path of its instance) pairs, in document order."""
    found: dict[tuple[str, str], Problem] = {}
    for error, prefix in errors:
        for path, message in _explain(error):
            problem = _locate(document, [*prefix, *path], message)
            found.setdefault((problem.pointer, problem.message), problem)
    return [found[key] for key in sorted(found, key=lambda key: _order(key[0], document))]


def _explain(error: ValidationError) -> Iterator[tuple[list[str | int], str]]:
    """(path, message) pairs for one jsonschema error, pointing at the offending property."""
    path = list(error.absolute_path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, Mapping):
        for name in error.validator_value:
            if name not in instance:
                yield [*path, name], f"'{name}' is required"
    elif error.validator == "additionalProperties" and isinstance(instance, Mapping):
        known = error.schema.get("properties", {})
        for name in instance:
            if name not in known:
                yield [*path, name], f"unexpected property '{name}'"
    else:
        custom = error.schema.get("errorMessage", {}) if isinstance(error.schema, Mapping) else {}
        yield path, custom.get(error.validator, error.message)


def _locate(document: Any, path: list[str | int], message: str) -> Problem:
    """A Problem at ``path``, its message prefixed with the node or edge it concerns."""
    pointer = "".join(f"/{_escape(str(part))}" for part in path)
    if len(path) >= 2 and path[0] in ("nodes", "edges") and isinstance(path[1], int):
        item = document[path[0]][path[1]]
        if isinstance(item, Mapping):
            if path[0] == "nodes" and isinstance(item.get("id"), str):
                return Problem(pointer, f"node '{item['id']}': {message}", item["id"])
            if (
                path[0] == "edges"
                and isinstance(item.get("source"), str)
                and isinstance(item.get("target"), str)
            ):
                return Problem(pointer, f"edge {item['source']}->{item['target']}: {message}")
    return Problem(pointer, message)


Predicate = Callable[[Any], bool]

_IS_TYPE: dict[str, Predicate] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "number": lambda v: _is_number(v),
    "integer": lambda v: (
        (isinstance(v, int) and not isinstance(v, bool))
        or (isinstance(v, float) and v.is_integer())
    ),
}
# As jsonschema words them (a failure is `v < bound`, ...), so NaN passes in both.
_BOUNDS: dict[str, Callable[[Any, Any], bool]] = {
    "minimum": lambda v, bound: not v < bound,
    "maximum": lambda v, bound: not v > bound,
    "exclusiveMinimum": lambda v, bound: not v <= bound,
}
_ANNOTATIONS = frozenset({"$schema", "title", "errorMessage", "then"})


def _predicate(schema: Mapping[str, Any]) -> Predicate:
    """A yes/no check for the part of JSON Schema that DAG_SCHEMA uses, agreeing with jsonschema."""
    checks: list[Predicate] = []
    for keyword, value in schema.items():
        if keyword in _ANNOTATIONS or keyword == "additionalProperties":
            continue
        if keyword == "type":
            checks.append(_IS_TYPE[value])
        elif keyword in ("enum", "const"):
            allowed = frozenset(value if keyword == "enum" else [value])
            # Strings only: jsonschema's equality rules for numbers and booleans are subtler.
            assert all(isinstance(item, str) for item in allowed), allowed
            checks.append(lambda v, allowed=allowed: isinstance(v, str) and v in allowed)
        elif keyword in _BOUNDS:
            bound, compare = value, _BOUNDS[keyword]
            checks.append(lambda v, b=bound, c=compare: not _is_number(v) or c(v, b))
        elif keyword == "minLength":
            checks.append(lambda v, n=value: not isinstance(v, str) or len(v) >= n)
        elif keyword == "required":
            checks.append(
                lambda v, names=tuple(value): not isinstance(v, dict) or all(n in v for n in names)
            )
        elif keyword == "properties":
            checks.append(_properties(value, schema.get("additionalProperties", True)))
        elif keyword == "items":
            items = _predicate(value)
            checks.append(lambda v, items=items: not isinstance(v, list) or all(map(items, v)))
        elif keyword == "allOf":
            subs = [_predicate(sub) for sub in value]
            checks.append(lambda v, subs=subs: all(sub(v) for sub in subs))
        elif keyword == "oneOf":
            subs = [_predicate(sub) for sub in value]
            checks.append(lambda v, subs=subs: sum(sub(v) for sub in subs) == 1)
        elif keyword == "if":
            when, then = _predicate(value), _predicate(schema.get("then", {}))
            checks.append(lambda v, when=when, then=then: not when(v) or then(v))
        else:
            raise NotImplementedError(f"no fast check for JSON Schema keyword {keyword!r}")
    if "additionalProperties" in schema and "properties" not in schema:
        checks.append(_properties({}, schema["additionalProperties"]))
    return _all_of(checks)


def _all_of(checks: list[Predicate]) -> Predicate:
    # Plain loops, not all(<generator>): this runs for every node and edge of a document.
    if not checks:
        return lambda v: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda v: first(v) and second(v)

    def check(value: Any) -> bool:
        for each in checks:
            if not each(value):
                return False
        return True

    return check


def _properties(properties: Mapping[str, Any], additional: Any) -> Predicate:
    known = {name: _predicate(sub) for name, sub in properties.items()}
    if additional is True:
        other: Predicate = lambda v: True  # noqa: E731
    elif additional is False:
        other = lambda v: False  # noqa: E731
    else:
        other = _predicate(additional)

    def check(value: Any) -> bool:
        if not isinstance(value, dict):
            return True
        for name, item in value.items():
            if not known.get(name, other)(item):
                return False
        return True

    return check


_FAST_FIELDS = _predicate(_FIELDS_SCHEMA)
_FAST_BY_TYPE = {type_: _predicate(then) for type_, then in _BY_TYPE.items()}


def _build(document: Any) -> Workflow | None:
    """The Workflow of every node and edge that can be read; None when there is no graph at all.

    A node needs a string id and an edge string endpoints; anything else is left out
    (the schema has said why), and the original pointers are kept in ``meta`` so
    validation still points into the document.
    """
    if not isinstance(document, Mapping) or not isinstance(document.get("nodes"), list):
        return None
    raw_edges = document.get("edges")
    nodes: list[Node] = []
    node_pointers: list[str] = []
    for index, item in enumerate(document["nodes"]):
        if isinstance(item, Mapping) and isinstance(item.get("id"), str):
            nodes.append(_node(item))
            node_pointers.append(f"/nodes/{index}")
    edges: list[Edge] = []
    edge_pointers: list[str] = []
    for index, item in enumerate(raw_edges if isinstance(raw_edges, list) else []):
        if (
            isinstance(item, Mapping)
            and isinstance(item.get("source"), str)
            and isinstance(item.get("target"), str)
        ):
            when = item.get("when") if isinstance(item.get("when"), str) else None
            edges.append(Edge(item["source"], item["target"], when))
            edge_pointers.append(f"/edges/{index}")
    meta: dict[str, Any] = {}
    if len(nodes) != len(document["nodes"]) or (
        isinstance(raw_edges, list) and len(edges) != len(raw_edges)
    ):
        meta = {"node_pointers": tuple(node_pointers), "edge_pointers": tuple(edge_pointers)}
    name = document.get("name")
    return Workflow(
        nodes=tuple(nodes),
        edges=tuple(edges),
        name=name if isinstance(name, str) else "",
        format="dag",
        meta=meta,
    )


def _node(item: Mapping[str, Any]) -> Node:
    type_ = item.get("type")
    type_ = type_ if isinstance(type_, str) else ""
    config = item.get("config")
    retry = item.get("retry")
    timeout = item.get("timeout_seconds")
    label = item.get("label")
    return Node(
        id=item["id"],
        type=type_,
        config=dict(config) if isinstance(config, Mapping) else {},
        retry=_retry(retry, type_) if isinstance(retry, Mapping) else None,
        timeout_seconds=_float(timeout) if _is_number(timeout) else None,
        label=label if isinstance(label, str) else None,
    )


def _retry(data: Mapping[str, Any], type_: str) -> RetryPolicy | None:
    # A retry block that omits max_attempts keeps the type's default (3 for actions).
    default_attempts = 3 if type_ == "action" else 1
    try:
        return RetryPolicy.from_dict(data, default_attempts=default_attempts)
    except (TypeError, ValueError, OverflowError):  # the schema has reported the bad field
        return None


def _float(value: int | float) -> float:
    try:
        return float(value)
    except OverflowError:  # a JSON integer beyond any float: longer than anyone will wait
        return math.inf


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _order(pointer: str, document: Any) -> tuple[tuple[int, int, str], ...]:
    """Sort key putting pointers in document order (nodes as written, /nodes/2 before /nodes/10)."""
    keys = list(document) if isinstance(document, Mapping) else []
    parts = pointer.split("/")[1:]
    top = [(0, keys.index(parts[0]) if parts and parts[0] in keys else len(keys), "")]
    return tuple(
        top + [(0, int(part), "") if part.isdecimal() else (1, 0, part) for part in parts[1:]]
    )
