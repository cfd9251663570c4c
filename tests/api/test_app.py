"""create_app wires settings, blueprints and the Celery hook."""

from __future__ import annotations

import importlib

import pytest

from app import api, create_app


def test_settings_and_limits_are_on_the_app(settings_sqlite):
    app = create_app(settings_sqlite)
    assert app.config["CANVASFLOW_SETTINGS"] is settings_sqlite
    assert app.extensions["canvasflow"] is settings_sqlite
    assert app.config["MAX_CONTENT_LENGTH"] == settings_sqlite.max_body_bytes


def test_missing_blueprint_modules_are_skipped(settings_sqlite, monkeypatch):
    monkeypatch.setattr(api, "BLUEPRINT_MODULES", ["workflows", "not_written_yet"])
    app = create_app(settings_sqlite)
    assert "workflows" in app.blueprints
    assert "not_written_yet" not in app.blueprints


def test_broken_blueprint_modules_are_not_hidden(settings_sqlite, monkeypatch):
    # A module that exists but fails to import (a missing dependency) must surface.
    real_import = importlib.import_module

    def fake_import(name: str, package: str | None = None):
        if name == "app.api.broken":
            raise ModuleNotFoundError("No module named 'missing_dep'", name="missing_dep")
        return real_import(name, package)

    monkeypatch.setattr(importlib, "import_module", fake_import)
    monkeypatch.setattr(api, "BLUEPRINT_MODULES", ["workflows", "broken"])
    with pytest.raises(ModuleNotFoundError, match="missing_dep"):
        create_app(settings_sqlite)


def test_celery_hook_starts_empty(settings_sqlite):
    app = create_app(settings_sqlite)
    assert "celery" in app.extensions


def test_web_admin_is_mounted_when_present(settings_sqlite):
    pytest.importorskip("web")
    client = create_app(settings_sqlite).test_client()
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"


def test_unknown_page_outside_the_api_stays_html_for_browsers(settings_sqlite):
    client = create_app(settings_sqlite).test_client()
    response = client.get("/no-such-page", headers={"Accept": "text/html"})
    assert response.status_code == 404
    assert response.mimetype == "text/html"
    response = client.get("/no-such-page", headers={"Accept": "application/json"})
    assert response.mimetype == "application/problem+json"


def test_get_celery_builds_once_per_app(settings_sqlite):
    from app.db import get_celery

    app = create_app(settings_sqlite)
    with app.app_context():
        first = get_celery()
        if first is None:  # tasks.celery_app not written yet
            pytest.skip("tasks.celery_app is not importable")
        assert get_celery() is first
        assert app.extensions["celery"] is first
