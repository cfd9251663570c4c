"""The web admin, server side: page shells, static assets, no key needed, HTML 404s.

The pages hold no data: the browser fetches it from /api with the user's key. So
these tests need no user, only that every shell renders, links only local assets and
leaves the API's own authentication alone.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from app import create_app
from settings import Settings
from tests.conftest import TINY_DAG, bearer, make_user

WEB = Path(__file__).resolve().parents[2] / "web"
STATIC = WEB / "static"

PAGES = {
    "/": "dashboard",
    "/login": "login",
    "/workflows": "workflows",
    "/workflows/new": "editor",
    "/workflows/0b7f2a8e-0000-4000-8000-000000000000": "workflow",
    "/workflows/0b7f2a8e-0000-4000-8000-000000000000/edit": "editor",
    "/executions": "executions",
    "/executions/3c1d0e9a-0000-4000-8000-000000000000": "execution",
    "/triggers": "triggers",
    "/dead-letters": "dead_letters",
    "/queues": "queues",
    "/audit": "audit",
}


@pytest.fixture
def web_app(settings_sqlite: Settings) -> Flask:
    app = create_app(settings_sqlite)
    app.testing = True
    return app


@pytest.fixture
def web(web_app: Flask) -> FlaskClient:
    return web_app.test_client()


@pytest.mark.parametrize(("path", "script"), PAGES.items())
def test_every_page_is_html_without_an_api_key(web: FlaskClient, path: str, script: str) -> None:
    response = web.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert f'src="/assets/js/pages/{script}.js"' in html
    assert 'type="module"' in html
    assert 'href="/assets/app.css"' in html
    assert "<main" in html and 'aria-label="Main"' in html


def test_pages_carry_a_same_origin_content_security_policy(web: FlaskClient) -> None:
    response = web.get("/workflows/new")
    csp = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_current_section_is_marked_in_the_navigation(web: FlaskClient) -> None:
    html = web.get("/executions/some-id").get_data(as_text=True)
    assert re.search(r'href="/executions" aria-current="page"', html)
    assert html.count('aria-current="page"') == 1


def test_ids_in_the_url_are_escaped_into_the_shell(web: FlaskClient) -> None:
    html = web.get('/executions/"><img src=x onerror=alert(1)>').get_data(as_text=True)
    assert "<img src=x" not in html
    assert 'data-execution-id="&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"' in html


def test_editor_shell_knows_which_workflow_it_edits(web: FlaskClient) -> None:
    new = web.get("/workflows/new").get_data(as_text=True)
    edit = web.get("/workflows/abc/edit").get_data(as_text=True)
    assert 'data-workflow-id=""' in new and "Create workflow" in new
    assert 'data-workflow-id="abc"' in edit and "Save as new version" in edit


@pytest.mark.parametrize(
    ("path", "mimetype"),
    [
        ("/assets/app.css", "text/css"),
        ("/assets/favicon.svg", "image/svg+xml"),
        ("/assets/js/api.js", "text/javascript"),
        ("/assets/js/dag.js", "text/javascript"),
        ("/assets/js/editor/model.js", "text/javascript"),
        ("/assets/js/pages/execution.js", "text/javascript"),
    ],
)
def test_static_assets_are_served(web: FlaskClient, path: str, mimetype: str) -> None:
    response = web.get(path)
    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    response.close()


def test_every_page_script_exists(web: FlaskClient) -> None:
    for script in set(PAGES.values()):
        assert (STATIC / "js" / "pages" / f"{script}.js").is_file(), script


def test_every_relative_module_import_resolves() -> None:
    # No build step: a typo in an import path only shows up in the browser, so check here.
    pattern = re.compile(r"""(?:import|export)\s[^;]*?from\s+["'](\.{1,2}/[^"']+)["']""", re.S)
    modules = sorted(STATIC.rglob("*.js"))
    assert modules
    for module in modules:
        for target in pattern.findall(module.read_text()):
            assert (module.parent / target).resolve().is_file(), f"{module.name}: {target}"


def test_nothing_is_loaded_from_another_origin() -> None:
    # Air-gapped installs: no CDN, no web fonts, no remote images.
    allowed = ("http://www.w3.org/2000/svg", "https://api.example.com", "https://example.com")
    for path in [*WEB.rglob("*.html"), *STATIC.rglob("*.js"), *STATIC.rglob("*.css")]:
        for url in re.findall(r"https?://[^\s\"'`)<>]+", path.read_text()):
            assert url.startswith(allowed), f"{path.relative_to(WEB)} refers to {url}"
        assert "@import" not in path.read_text() or path.suffix != ".css"


def test_unknown_page_is_an_html_404(web: FlaskClient) -> None:
    response = web.get("/no-such-page", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.mimetype == "text/html"


def test_unknown_api_route_is_still_problem_json(web: FlaskClient) -> None:
    response = web.get("/api/no-such-route")
    assert response.status_code == 404
    assert response.mimetype == "application/problem+json"


def test_the_api_still_needs_a_key(web: FlaskClient) -> None:
    assert web.get("/api/workflows").status_code == 401
    assert web.get("/api/executions").status_code == 401


def test_the_pages_call_the_api_with_the_users_key(
    web: FlaskClient, settings_sqlite: Settings
) -> None:
    # What the browser does after login: the same routes, a bearer key, JSON back.
    key = make_user(settings_sqlite, "web-user")
    created = web.post(
        "/api/workflows", json={"name": "w", "definition": TINY_DAG}, headers=bearer(key)
    )
    assert created.status_code == 201
    assert web.get("/api/workflows", headers=bearer(key)).get_json()["items"][0]["name"] == "w"
    assert web.get(f"/workflows/{created.get_json()['id']}").status_code == 200


def test_editor_dry_run_reports_definition_problems_and_creates_nothing(
    web: FlaskClient, settings_sqlite: Settings
) -> None:
    # The editor's Validate button sends a blank name: always refused, so nothing is
    # stored, while the 422 still lists every problem of the definition.
    key = make_user(settings_sqlite, "validator")
    broken = {"nodes": [{"id": "start", "type": "start"}], "edges": []}
    response = web.post(
        "/api/workflows", json={"name": "", "definition": broken}, headers=bearer(key)
    )
    assert response.status_code == 422
    pointers = [p["pointer"] for p in response.get_json()["errors"]]
    assert "/name" in pointers
    assert any(p.startswith("/definition") for p in pointers)
    valid = web.post(
        "/api/workflows", json={"name": "", "definition": TINY_DAG}, headers=bearer(key)
    )
    assert [p["pointer"] for p in valid.get_json()["errors"]] == ["/name"]
    assert web.get("/api/workflows", headers=bearer(key)).get_json()["items"] == []
