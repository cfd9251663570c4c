"""Hostile bodies on every POST/PUT route: never a 500, always problem+json.

Routes are read from the app's URL map, so blueprints added later are fuzzed too.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

PROBLEM = "application/problem+json"
DEEP = 200


def nested_object(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
document: {dsl: '1.0.0', namespace: x, name: bomb, version: '1'}
do: *i
"""

WRONG_TYPES = {
    "name": ["x"],
    "description": {"a": 1},
    "definition": "nodes",
    "max_concurrency": "3",
    "workflow_id": 7,
    "input": float("1e300"),
    "idempotency_key": {"k": 1},
    "type": 9,
    "config": [],
    "enabled": "yes",
    "status": None,
    "cron": 5,
}

JSON = "application/json"
YAML = "application/yaml"

# (content type, raw body)
BODIES: list[tuple[str | None, bytes | str]] = [
    (JSON, b""),
    (JSON, b"   \n"),
    (JSON, b"{"),
    (JSON, b'{"name": "x",}'),
    (JSON, b"\xff\xfe\xfd"),
    (JSON, b'{"name": "\xc3\x28"}'),
    (JSON, "[]"),
    (JSON, "[1, 2, 3]"),
    (JSON, '"just a string"'),
    (JSON, "123"),
    (JSON, "null"),
    (JSON, "true"),
    (JSON, "{}"),
    (JSON, json.dumps(WRONG_TYPES, allow_nan=True)),
    (JSON, json.dumps({k: None for k in WRONG_TYPES})),
    (JSON, json.dumps({"name": "x" * 1_000_000, "definition": {"nodes": "y" * 100_000}})),
    (JSON, json.dumps({"name": "🙂" * 300, "description": "d" * 20_000, "definition": {}})),
    (JSON, "[" * 50_000 + "]" * 50_000),
    (JSON, '{"name": "x", "definition": ' + nested_object(DEEP) + "}"),
    (JSON, '{"name": "x", "definition": ' + nested_object(95) + "}"),
    (JSON, '{"n": NaN, "m": -Infinity}'),
    (JSON, '{"n": 1e400}'),
    (JSON, '{"n": ' + "9" * 5000 + "}"),
    (JSON, '{"name": "a\\u0000b", "definition": {"nodes": ["\\u0000"]}}'),
    (JSON, '{"name": "\\ud800", "definition": {"\\udfff": 1}}'),
    (JSON, '{"name": "x", "definition": {"nodes": [{"id": {"x": 1}, "type": []}], "edges": "z"}}'),
    (JSON, '{"name": "x", "definition": {"nodes": [null, 1, "a", []], "edges": [null, {}]}}'),
    (
        JSON,
        '{"name": "x", "definition": {"nodes": [{"id": "s", "type": "start", "config": 5,'
        ' "retry": "r", "position": "p"}], "edges": [{"source": 1, "target": [], "when": 3}]}}',
    ),
    # str.isdigit() is true for '²', which int() refuses: a pointer sort key once crashed on it.
    (JSON, '{"name": "x", "definition": {"nodes": [{"id": "s", "\u00b2": 1}], "edges": []}}'),
    (JSON, '{"name": "x", "definition": {"document": {"dsl": 5}}}'),
    (JSON, '{"name": "x", "definition": {"document": {"dsl": "1.0.0"}, "do": "nope"}}'),
    (
        JSON,
        '{"name": "x", "definition": {"document": {"dsl": "1.0.0", "namespace": 1,'
        ' "name": [], "version": {}}, "do": [{"t": {"call": 5}}, 7, null]}}',
    ),
    (JSON, '{"document": {"dsl": "9.9"}, "do": []}'),
    (JSON, '{"workflow_id": "' + "x" * 10_000 + '", "input": {"a": [1, 2]}}'),
    (JSON, '{"workflow_id": "a\\u0000", "idempotency_key": "\\u0000"}'),
    ("application/json; charset=latin-1", b'{"name": "\xe9"}'),
    ("application/merge-patch+json", "{}"),
    (YAML, BILLION_LAUGHS),
    (YAML, "key: [unclosed"),
    (YAML, "- a\n- b\n"),
    (YAML, "!!python/object/apply:os.system ['echo pwned']"),
    (YAML, "when: 2024-01-01\n1: one\nnull: x\nset: !!set {a, b}\nbin: !!binary aGk=\nnan: .nan\n"),
    (YAML, "document:\n  dsl: '1.0.0'\n  name: [1]\n" + "  " * 0 + "do: 5\n"),
    (YAML, "[" * 5000 + "]" * 5000),
    ("text/plain", "hello"),
    ("application/xml", "<a/>"),
    ("application/x-www-form-urlencoded", "name=x&definition=y"),
    (
        "multipart/form-data; boundary=zz",
        "--zz\r\nContent-Disposition: form-data; name=a\r\n\r\nb\r\n--zz--",
    ),
    (None, '{"name": 1}'),
]


def fill_path(rule: Any, workflow_id: str) -> str:
    def sub(match: re.Match[str]) -> str:
        converter, name = match.group(1), match.group(2)
        if converter and converter.startswith("int"):
            return "1"
        return workflow_id if name == "workflow_id" else "does-not-exist"

    return re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>", sub, rule.rule)


def write_routes(app: Any, workflow_id: str) -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        for method in sorted((rule.methods or set()) & {"POST", "PUT", "PATCH"}):
            routes.append((method, fill_path(rule, workflow_id)))
    return routes


def insane(response: Any) -> str | None:
    """Why ``response`` is not a proper answer to a bad request, or None."""
    if response.status_code >= 500:
        return f"{response.status_code}: {response.get_data(as_text=True)[:200]}"
    if response.status_code >= 400:
        if response.mimetype != PROBLEM:
            return f"{response.status_code} as {response.mimetype}"
        if (response.get_json() or {}).get("status") != response.status_code:
            return "problem status differs from the HTTP status"
    return None


def assert_sane(response: Any, where: str) -> None:
    problem = insane(response)
    assert problem is None, f"{where}: {problem}"


@pytest.fixture
def workflow_id(client, auth, tiny_dag) -> str:
    response = client.post(
        "/api/workflows", json={"name": "fuzzed", "definition": tiny_dag}, headers=auth
    )
    assert response.status_code == 201
    return response.get_json()["id"]


def test_hostile_bodies_never_500(app, client, auth, workflow_id):
    routes = write_routes(app, workflow_id)
    assert ("POST", "/api/workflows") in routes
    assert ("PUT", f"/api/workflows/{workflow_id}") in routes
    failures = []
    for method, path in routes:
        for content_type, body in BODIES:
            headers = dict(auth)
            if content_type is not None:
                headers["Content-Type"] = content_type
            problem = insane(client.open(path, method=method, data=body, headers=headers))
            if problem:
                failures.append(f"{method} {path} {content_type} {str(body)[:70]!r} -> {problem}")
    assert not failures, "\n".join(failures)
    # The workflow survived all of it unchanged.
    current = client.get(f"/api/workflows/{workflow_id}", headers=auth).get_json()
    assert current["version"] == 1 and current["name"] == "fuzzed"


def test_hostile_query_strings_never_500(client, auth, workflow_id):
    for query in (
        "limit=%00",
        "cursor=%00",
        "cursor=" + "A" * 5000,
        "name=%00",
        "limit=1e3",
        "limit=" + "9" * 400,
        "cursor=eyJjIjoiMjAyNC0wMS0wMSIsImkiOltdfQ",
    ):
        for path in (
            "/api/workflows",
            f"/api/workflows/{workflow_id}/versions",
            "/api/observability/audit",
        ):
            assert_sane(client.get(f"{path}?{query}", headers=auth), f"{path}?{query}")
    for query in ("action=%00", "since=%00", "until=9999-99-99", "since=2024-01-01T00:00:00+99:00"):
        assert_sane(client.get(f"/api/observability/audit?{query}", headers=auth), query)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)
FIELDS = st.sampled_from(["name", "description", "definition", "max_concurrency", "nodes", "edges"])
BODY = st.dictionaries(FIELDS, JSON_VALUES, max_size=5) | JSON_VALUES


@hypothesis_settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODY, as_definition=st.booleans())
def test_random_json_never_500(client, auth, workflow_id, body, as_definition):
    payload = {"name": "r", "definition": body} if as_definition else body
    for method, path in (("POST", "/api/workflows"), ("PUT", f"/api/workflows/{workflow_id}")):
        response = client.open(path, method=method, json=payload, headers=auth)
        assert_sane(response, f"{method} {path} {payload!r}")
