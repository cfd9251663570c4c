"""Bearer API keys: 401 for anything but a live key, hashed at rest, public routes open."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import select

import models
from app.auth import create_api_key, create_user
from engine.errors import Conflict
from models import ApiKey, User, utcnow
from tests.conftest import bearer


def assert_401(response) -> None:
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_missing_key_is_401(client):
    assert_401(client.get("/api/workflows"))
    assert_401(client.post("/api/workflows", json={}))


@pytest.mark.parametrize(
    "header",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "Bearer not-a-key",
        "Bearer cf_00000000_" + "a" * 43,  # well-formed, unknown
        "Token cf_00000000_" + "a" * 43,
    ],
)
def test_wrong_key_is_401(client, user_key, header):
    assert_401(client.get("/api/workflows", headers={"Authorization": header}))


def test_tampered_key_is_401(client, user_key):
    tampered = user_key[:-1] + ("A" if user_key[-1] != "A" else "B")
    assert_401(client.get("/api/workflows", headers=bearer(tampered)))
    prefix_swapped = "cf_ffffffff_" + user_key.split("_", 2)[2]
    assert_401(client.get("/api/workflows", headers=bearer(prefix_swapped)))


def test_valid_key_works_and_scheme_is_case_insensitive(client, user_key):
    assert client.get("/api/workflows", headers=bearer(user_key)).status_code == 200
    response = client.get("/api/workflows", headers={"Authorization": f"bearer {user_key}"})
    assert response.status_code == 200


def test_key_is_stored_hashed_and_use_is_recorded(client, user_key, settings):
    client.get("/api/workflows", headers=bearer(user_key))
    with models.session_scope(settings.effective_database_url) as session:
        key = session.scalars(select(ApiKey)).one()
        assert key.key_hash == hashlib.sha256(user_key.encode()).hexdigest()
        assert key.prefix == user_key.split("_")[1]
        assert user_key not in {key.key_hash, key.prefix, key.name}
        assert key.last_used_at is not None


@pytest.mark.parametrize("column", ["revoked_at", "expires_at"])
def test_revoked_or_expired_key_is_401(client, user_key, settings, column):
    with models.session_scope(settings.effective_database_url) as session:
        key = session.scalars(select(ApiKey)).one()
        setattr(key, column, utcnow() - timedelta(seconds=1))
    response = client.get("/api/workflows", headers=bearer(user_key))
    assert_401(response)
    assert ("revoked" if column == "revoked_at" else "expired") in response.get_json()["detail"]


def test_key_expiring_later_still_works(client, settings):
    with models.session_scope(settings.effective_database_url) as session:
        user, _ = create_user(session, "carol")
        key = create_api_key(session, user.id, expires_at=utcnow() + timedelta(hours=1))
    assert client.get("/api/workflows", headers=bearer(key)).status_code == 200


def test_second_key_for_same_user_sees_same_rows(client, user_key, settings, tiny_dag):
    created = client.post(
        "/api/workflows", json={"name": "x", "definition": tiny_dag}, headers=bearer(user_key)
    ).get_json()
    with models.session_scope(settings.effective_database_url) as session:
        user_id = session.scalars(select(User.id).where(User.name == "alice")).one()
        second = create_api_key(session, user_id)
    assert second != user_key
    response = client.get(f"/api/workflows/{created['id']}", headers=bearer(second))
    assert response.status_code == 200


def test_duplicate_user_name_is_conflict(settings, user_key):
    with pytest.raises(Conflict), models.session_scope(settings.effective_database_url) as s:
        create_user(s, "alice")


@pytest.mark.parametrize(
    "path",
    ["/api/health", "/api/openapi.json", "/api/docs", "/api/docs/swagger", "/api/docs/redoc"],
)
def test_public_routes_need_no_key(client, path):
    assert client.get(path).status_code == 200


def test_webhooks_are_not_behind_the_key(client):
    # Whatever the webhook blueprint answers, it is never the bearer-key 401.
    response = client.post("/api/webhooks/some-trigger", json={})
    assert response.status_code != 401 or "Bearer" not in response.headers.get(
        "WWW-Authenticate", ""
    )
