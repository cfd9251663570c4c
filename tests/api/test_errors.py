"""Every error is application/problem+json; nothing reaches the client as a bare 500."""

from __future__ import annotations

import io
import json

import pytest

from app import create_app
from engine.errors import TooManyRequests
from settings import Settings
from tests.conftest import bearer, make_user

PROBLEM = "application/problem+json"


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["status"] == status
    assert {"type", "title", "status"} <= body.keys()
    return body


def post_raw(client, auth, data, content_type="application/json", path="/api/workflows"):
    return client.post(path, data=data, headers={**auth, "Content-Type": content_type})


def test_malformed_json_is_400_with_line_and_column(client, auth):
    body = assert_problem(post_raw(client, auth, '{"name": "x",\n  "definition": {,}}'), 400)
    assert "line 2, column" in body["detail"]
    assert "Malformed JSON" in body["detail"]


@pytest.mark.parametrize("document", ["[]", '"text"', "42", "null", "true"])
def test_json_that_is_not_an_object_is_422(client, auth, document):
    body = assert_problem(post_raw(client, auth, document), 422)
    assert body["errors"][0]["pointer"] == ""
    assert "expected a JSON object" in body["errors"][0]["message"]


def test_invalid_utf8_is_400(client, auth):
    body = assert_problem(post_raw(client, auth, b'{"name": "\xff\xfe"}'), 400)
    assert "UTF-8" in body["detail"]


def test_empty_body_is_400(client, auth):
    assert_problem(post_raw(client, auth, b""), 400)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
    ],
)
def test_other_content_types_are_415(client, auth, content_type):
    body = assert_problem(post_raw(client, auth, b'{"name": "x"}', content_type), 415)
    assert "application/json" in body["detail"]


@pytest.mark.parametrize("text", ['{"n": NaN}', '{"n": Infinity}', '{"n": 1e999}'])
def test_non_json_numbers_are_400(client, auth, text):
    assert_problem(post_raw(client, auth, text), 400)


def test_deeply_nested_json_is_refused(client, auth):
    deep = "[" * 100_000 + "]" * 100_000
    assert_problem(post_raw(client, auth, deep), 400)
    medium = '{"name": "x", "definition": ' + '{"a": ' * 150 + "1" + "}" * 150 + "}"
    body = assert_problem(post_raw(client, auth, medium), 422)
    assert "nested deeper" in body["errors"][0]["message"]


def test_nul_characters_are_422(client, auth, tiny_dag):
    response = client.post(
        "/api/workflows", json={"name": "a\x00b", "definition": tiny_dag}, headers=auth
    )
    body = assert_problem(response, 422)
    assert body["errors"][0]["pointer"] == "/name"


def test_lone_surrogates_are_422(client, auth):
    body = assert_problem(post_raw(client, auth, '{"name": "\\ud800", "definition": {}}'), 422)
    assert body["errors"][0]["pointer"] == "/name"


def test_unknown_route_is_404_problem(client, auth):
    body = assert_problem(client.get("/api/no-such-thing", headers=auth), 404)
    assert body["detail"] == "No route for GET /api/no-such-thing."
    assert body["instance"] == "/api/no-such-thing"
    # Without a key too: unknown routes say 404, not 401.
    assert_problem(client.get("/api/no-such-thing"), 404)


def test_wrong_method_is_405_with_allow(client, auth):
    response = client.patch("/api/workflows", headers=auth)
    body = assert_problem(response, 405)
    assert "GET" in response.headers["Allow"] and "POST" in response.headers["Allow"]
    assert "PATCH" in body["detail"]


@pytest.fixture
def small_app(settings_sqlite):
    app = create_app(settings_sqlite.with_(max_body_bytes=1000))
    app.testing = True
    return app


def test_body_over_the_limit_is_413(small_app, settings_sqlite):
    client = small_app.test_client()
    auth = bearer(make_user(settings_sqlite, "alice"))
    body = assert_problem(post_raw(client, auth, b"{" + b" " * 1000 + b"}"), 413)
    assert "1000" in body["detail"]
    assert post_raw(client, auth, b"{" + b" " * 900 + b"}").status_code == 422


def test_chunked_body_over_the_limit_is_413(small_app, settings_sqlite):
    # No Content-Length: a server that de-chunks (waitress) sets wsgi.input_terminated,
    # and werkzeug stops reading at the limit.
    client = small_app.test_client()
    auth = bearer(make_user(settings_sqlite, "alice"))
    response = client.post(
        "/api/workflows",
        input_stream=io.BytesIO(b"[" + b"1," * 5000 + b"1]"),
        headers={**auth, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert_problem(response, 413)


def test_real_ten_megabytes_plus_one_is_413(client, auth, settings):
    assert settings.max_body_bytes == 10 * 1024 * 1024
    assert_problem(post_raw(client, auth, b" " * (10 * 1024 * 1024 + 1)), 413)


def test_unexpected_errors_are_500_without_internals(settings_sqlite):
    app = create_app(settings_sqlite)

    def boom():
        raise RuntimeError("password=hunter2 at /secret/path.py")

    app.add_url_rule("/api/webhooks/boom", "boom", boom)  # webhooks are public: no key needed
    response = app.test_client().get("/api/webhooks/boom")
    body = assert_problem(response, 500)
    text = response.get_data(as_text=True)
    assert "hunter2" not in text and "secret" not in text and "RuntimeError" not in text
    assert body["error_id"] in body["detail"]


def test_too_many_requests_is_429_with_retry_after(settings_sqlite):
    app = create_app(settings_sqlite)

    def busy():
        raise TooManyRequests("queue is full", retry_after=7)

    app.add_url_rule("/api/webhooks/busy", "busy", busy)
    response = app.test_client().get("/api/webhooks/busy")
    body = assert_problem(response, 429)
    assert response.headers["Retry-After"] == "7"
    assert body["detail"] == "queue is full"


def test_database_down_is_503(tmp_path):
    settings = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://nobody@127.0.0.1:1/x")
    client = create_app(settings).test_client()
    response = client.get("/api/workflows", headers=bearer("cf_00000000_" + "a" * 43))
    body = assert_problem(response, 503)
    assert response.headers["Retry-After"]
    assert "database" in body["detail"]
    assert "nobody" not in response.get_data(as_text=True)


def test_problem_bodies_are_json(client, auth):
    response = post_raw(client, auth, "{")
    assert json.loads(response.get_data(as_text=True))["status"] == 400
