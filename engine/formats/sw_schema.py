"""The official Serverless Workflow 1.0 JSON Schema: built into a validator once, its errors
made legible.

The schema ships beside this module, a verbatim copy of the specification's
``workflow.yaml``. Checked as written, jsonschema needs ~250 ms for a 20-task document:
every task is tried against a 12-way ``oneOf`` (and every call against a 7-way one), and
each ``unevaluatedProperties`` re-validates the subschemas next to it. Two changes bring
that to ~10 ms without changing which documents are valid:

- ``_dispatch_task_kinds`` turns those two ``oneOf`` into ``if``/``then`` chains keyed on
  the property that names the kind (``call``, ``do``, ...; the value of ``call``);
- ``_unevaluated_properties`` trusts ``allOf`` members instead of re-validating them.

Each states why it is equivalent; the tests compare this validator with the untouched one
on every example of the specification.
"""

from __future__ import annotations

import copy
import functools
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from importlib import resources
from typing import Any

import yaml
from jsonschema import validators
from jsonschema.exceptions import ValidationError
from jsonschema.protocols import Validator
from referencing import Registry, Resource

from ..errors import Problem

SCHEMA_FILE = "serverless-workflow-1.0.schema.yaml"

# The property naming each kind of task: at most one of them appears in a valid task.
_TASK_KINDS = {
    "callTask": "call",
    "doTask": "do",
    "forkTask": "fork",
    "emitTask": "emit",
    "forTask": "for",
    "listenTask": "listen",
    "raiseTask": "raise",
    "runTask": "run",
    "setTask": "set",
    "switchTask": "switch",
    "tryTask": "try",
    "waitTask": "wait",
}


@functools.cache
def official_schema() -> dict[str, Any]:
    """The schema exactly as published (parsed once; do not mutate it)."""
    text = resources.files(__package__).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = yaml.safe_load(text)
    return schema


@functools.cache
def validator() -> Validator:
    """The validator for the schema's own draft (2020-12), built once per process."""
    schema = _dispatch_task_kinds(official_schema())
    # Every $ref is internal ("#/$defs/..."): resolve in this one resource, never fetch.
    resource: Resource[Any] = Resource.from_contents(schema)
    registry: Registry[Any] = Registry().with_resource(schema["$id"], resource)
    resolver = registry.resolver(base_uri=schema["$id"])

    def unevaluated(
        v: Validator, value: Any, instance: Any, here: Any
    ) -> Iterator[ValidationError]:
        return _unevaluated_properties(v, value, instance, here, resolver)

    draft = validators.validator_for(schema)
    fast = validators.extend(draft, {"unevaluatedProperties": unevaluated})
    built: Validator = fast(schema, registry=registry)
    return built


def schema_problems(document: Any) -> list[Problem]:
    """Every schema violation in ``document``, each at the JSON pointer of the bad value."""
    problems: list[Problem] = []
    for error in _without_echoes(validator().iter_errors(document)):
        for path, message in _explain(error):
            problem = Problem(_pointer(path), message)
            if problem not in problems:
                problems.append(problem)
    return problems


# --- speed, with the same verdicts ------------------------------------------------------


def _dispatch_task_kinds(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` whose task and call ``oneOf`` pick their branch by name.

    Every task branch requires its kind's property and, through
    ``unevaluatedProperties: false``, forbids the other kinds' properties (``for`` tasks
    alone also carry ``do``, so ``for`` is tested first). Hence at most one branch can be
    valid, and it is the one named by the property present: trying only that branch gives
    the same verdict. Likewise each call branch requires its own ``const`` value of
    ``call``, and the custom-function branch excludes exactly those values. A task with
    none of the properties still meets the original ``oneOf``, so its error is unchanged.
    If the schema is not shaped as expected, it is returned untouched (slow but exact).
    """
    fast = copy.deepcopy(schema)
    defs = fast.get("$defs", {})
    task, call = defs.get("task", {}), defs.get("callTask", {})
    branches = {b.get("$ref", "").removeprefix("#/$defs/"): b for b in task.get("oneOf", [])}
    calls = {_call_const(b): b for b in call.get("oneOf", [])}
    function = calls.pop(None, None)
    if set(branches) != set(_TASK_KINDS) or _excluded_calls(function) != set(calls):
        return schema

    # Outermost test first: a branch also requiring another kind's property (``for`` needs
    # ``do``) must come before that kind; then schema order, which puts ``call`` early.
    def needs_another_kind(name: str) -> bool:
        return len(set(defs[name].get("required", [])) & set(_TASK_KINDS.values())) > 1

    order = sorted(branches, key=needs_another_kind, reverse=True)
    chain: dict[str, Any] = {"title": task.get("title", "Task"), "oneOf": task.pop("oneOf")}
    for name in reversed(order):
        chain = {"if": {"required": [_TASK_KINDS[name]]}, "then": branches[name], "else": chain}
    # Redundant once every branch forbids what it does not evaluate, and costly: dropped.
    task.pop("unevaluatedProperties", None)
    task.update(chain)

    call.pop("oneOf")
    chain = function
    for value, branch in calls.items():
        chain = {
            "if": {"required": ["call"], "properties": {"call": {"const": value}}},
            "then": branch,
            "else": chain,
        }
    call.update(chain)
    return fast


def _excluded_calls(function: Any) -> set[str] | None:
    """The built-in call names the custom-function branch refuses."""
    try:
        return set(function["allOf"][1]["properties"]["call"]["not"]["enum"])
    except (KeyError, IndexError, TypeError):
        return None


def _call_const(branch: Mapping[str, Any]) -> str | None:
    for part in branch.get("allOf", []):
        value = part.get("properties", {}).get("call", {}).get("const")
        if value is not None:
            return str(value)
    return None


def _unevaluated_properties(
    validator: Validator, unevaluated: Any, instance: Any, schema: Mapping[str, Any], resolver: Any
) -> Iterator[ValidationError]:
    """``unevaluatedProperties`` as jsonschema implements it, except that ``allOf`` members
    are trusted rather than re-validated: if one fails, ``allOf`` already fails the very
    schema carrying this keyword, so the verdict is the same (with one echo fewer)."""
    if not isinstance(instance, dict):
        return
    seen = _evaluated_keys(validator, instance, schema, resolver)
    extras = sorted(
        (
            key
            for key in instance
            if key not in seen and next(validator.descend(instance[key], unevaluated), None)
        ),
        key=str,
    )
    if extras:
        names = ", ".join(repr(key) for key in extras)
        verb = "was" if len(extras) == 1 else "were"
        if unevaluated is False:
            message = f"Unevaluated properties are not allowed ({names} {verb} unexpected)"
        else:
            message = (
                f"Unevaluated properties are not valid under the given schema "
                f"({names} {verb} unevaluated and invalid)"
            )
        yield ValidationError(message)


def _evaluated_keys(
    validator: Validator, instance: dict[str, Any], schema: Any, resolver: Any
) -> set[str]:
    if not isinstance(schema, dict):
        return set()

    def valid(subschema: Any, value: Any = instance) -> bool:
        return next(validator.descend(value, subschema), None) is None

    keys: set[str] = set()
    if "$ref" in schema:
        keys |= _evaluated_keys(
            validator, instance, resolver.lookup(schema["$ref"]).contents, resolver
        )
    if isinstance(schema.get("properties"), dict):
        keys |= schema["properties"].keys() & instance.keys()
    for keyword in ("additionalProperties", "unevaluatedProperties"):
        if keyword in schema:
            keys |= {k for k, v in instance.items() if valid(schema[keyword], v)}
    for pattern in schema.get("patternProperties", {}):
        keys |= {k for k in instance if re.search(pattern, k)}
    for name, subschema in schema.get("dependentSchemas", {}).items():
        if name in instance:
            keys |= _evaluated_keys(validator, instance, subschema, resolver)
    for subschema in schema.get("allOf", []):
        keys |= _evaluated_keys(validator, instance, subschema, resolver)
    for keyword in ("oneOf", "anyOf"):
        for subschema in schema.get(keyword, []):
            if valid(subschema):
                keys |= _evaluated_keys(validator, instance, subschema, resolver)
    if "if" in schema:
        if valid(schema["if"]):
            keys |= _evaluated_keys(validator, instance, schema["if"], resolver)
            keys |= _evaluated_keys(validator, instance, schema.get("then"), resolver)
        else:
            keys |= _evaluated_keys(validator, instance, schema.get("else"), resolver)
    return keys


# --- legible errors ---------------------------------------------------------------------


def _without_echoes(errors: Iterable[ValidationError]) -> list[ValidationError]:
    """Drop "unevaluated properties" errors beside a failed oneOf/anyOf: the properties
    went unevaluated only because no branch matched, which the other error explains."""
    errors = list(errors)
    failed = {tuple(e.absolute_path) for e in errors if e.validator in ("oneOf", "anyOf")}
    return [
        e
        for e in errors
        if not (e.validator == "unevaluatedProperties" and tuple(e.absolute_path) in failed)
    ]


def _explain(error: ValidationError) -> list[tuple[Sequence[Any], str]]:
    """The error(s) worth showing for ``error``: inside a failed oneOf/anyOf, those of the
    branch the value was evidently meant for, not "not valid under any of the schemas"."""
    if error.validator not in ("oneOf", "anyOf") or not error.context:
        return [(error.absolute_path, _message(error))]
    branches: dict[int, list[ValidationError]] = defaultdict(list)
    for sub in error.context:
        branches[sub.relative_schema_path[0]].append(sub)
    meant = [i for i, errs in branches.items() if not _rejected_outright(errs)]
    fewest = min((len(branches[i]) for i in meant), default=0)
    meant = [i for i in meant if len(branches[i]) == fewest]
    if len(meant) == 1:
        return [found for sub in _without_echoes(branches[meant[0]]) for found in _explain(sub)]
    return [(error.absolute_path, _no_branch_message(error, branches, meant))]


def _rejected_outright(errors: list[ValidationError]) -> bool:
    """True when a branch plainly describes another kind of value: it misses all of its
    required properties, wants another type, or another constant near the top."""
    for error in errors:
        depth = len(error.relative_path)
        if error.validator == "required" and depth == 0 and isinstance(error.instance, dict):
            if not set(error.validator_value) & error.instance.keys():
                return True
        elif error.validator == "type" and depth == 0:
            return True
        elif error.validator in ("const", "enum", "not") and depth <= 1:
            return True
        elif error.validator in ("oneOf", "anyOf") and depth == 0 and error.context:
            nested: dict[int, list[ValidationError]] = defaultdict(list)
            for sub in error.context:
                nested[sub.relative_schema_path[0]].append(sub)
            if all(_rejected_outright(errs) for errs in nested.values()):
                return True
    return False


def _no_branch_message(
    error: ValidationError, branches: Mapping[int, list[ValidationError]], meant: list[int]
) -> str:
    value = _short(error.instance)
    title = error.schema.get("title") if isinstance(error.schema, dict) else None
    what = f"is not a valid {title}" if title else "matches none of the allowed forms"
    if meant:  # several branches fit equally well: name them
        names = [_branch_title(error, index) for index in meant]
        if all(names):
            return f"{value} {what}: expected {' or '.join(map(str, names))}"
        return f"{value} {what}: {'; '.join(_message(branches[i][0]) for i in meant)}"
    # Each branch turned the value away at the door; say what the branches wanted.
    doors = [
        [e for e in _flatten(errs) if not e.relative_path and e.validator in ("type", "required")]
        for errs in branches.values()
    ]
    if all(any(e.validator == "type" for e in door) for door in doors):
        types = _unique(
            t
            for door in doors
            for e in door
            if e.validator == "type"
            for t in _as_list(e.validator_value)
        )
        return f"{value} is not of type {' or '.join(map(repr, types))}"
    if all(door for door in doors):
        wanted = _unique(
            e.validator_value[0]
            for door in doors
            for e in door
            if e.validator == "required" and e.validator_value
        )
        return f"{value} {what}: expected one of the properties {', '.join(map(repr, wanted))}"
    return f"{value} {what}"


def _flatten(errors: Iterable[ValidationError]) -> Iterator[ValidationError]:
    """Errors, with a nested oneOf/anyOf at the same place replaced by its branches' errors."""
    for error in errors:
        if error.validator in ("oneOf", "anyOf") and error.context and not error.relative_path:
            yield from _flatten(error.context)
        else:
            yield error


def _branch_title(error: ValidationError, index: int) -> str | None:
    branch = error.validator_value[index]
    if not isinstance(branch, dict):
        return None
    if "title" in branch:
        return str(branch["title"])
    ref = branch.get("$ref", "")
    if ref.startswith("#/$defs/"):
        target = official_schema()["$defs"].get(ref.removeprefix("#/$defs/"), {})
        return str(target["title"]) if "title" in target else None
    return None


def _message(error: ValidationError) -> str:
    if error.validator == "maxProperties" and error.validator_value == 1:
        # Usually a YAML indentation slip in a task list: two tasks in one item.
        names = ", ".join(map(repr, error.instance))
        return f"expected a single entry, found {len(error.instance)} ({names})"
    # jsonschema quotes the whole offending value; a whole task is too much to read.
    shown = repr(error.instance)
    short = _short(error.instance)
    return error.message.replace(shown, short, 1) if shown != short else error.message


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    if len(text) <= limit:
        return text
    if isinstance(value, dict):
        keys = [f"{key!r}: ..." for key in list(value)[:3]] + (["..."] if len(value) > 3 else [])
        return "{" + ", ".join(keys) + "}"
    if isinstance(value, list):
        return f"[... {len(value)} items]"
    return text[: limit - 3] + "..."


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _unique(items: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(items))


def _pointer(path: Iterable[Any]) -> str:
    """RFC 6901: ``["do", 0, "a/b"]`` -> ``/do/0/a~1b``."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)
