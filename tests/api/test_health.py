"""GET /api/health: 200 when every dependency answers, 503 (same shape) when one does not."""

from __future__ import annotations

from app import create_app
from settings import Settings
from tests.services import require_rabbitmq, require_redis


def test_health_on_the_embedded_default(client):
    response = client.get("/api/health")  # no key needed
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["checks"] == {
        "database": "ok",
        "broker": "ok (embedded)",
        "result_backend": "ok (embedded)",
    }


def test_health_is_503_when_the_database_is_down(tmp_path):
    settings = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://x@127.0.0.1:1/x")
    response = create_app(settings).test_client().get("/api/health")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"].startswith("unavailable")
    assert body["checks"]["broker"] == "ok (embedded)"


def test_health_is_503_when_broker_and_backend_are_down(settings_sqlite):
    settings = settings_sqlite.with_(
        broker_url="amqp://guest:guest@127.0.0.1:1//", result_backend="redis://127.0.0.1:1/0"
    )
    response = create_app(settings).test_client().get("/api/health")
    assert response.status_code == 503
    checks = response.get_json()["checks"]
    assert checks["database"] == "ok"
    assert checks["broker"].startswith("unavailable")
    assert checks["result_backend"].startswith("unavailable")
    assert "guest" not in response.get_data(as_text=True)


def test_health_with_real_rabbitmq_and_redis(settings_sqlite):
    settings = settings_sqlite.with_(broker_url=require_rabbitmq(), result_backend=require_redis())
    response = create_app(settings).test_client().get("/api/health")
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["checks"] == {
        "database": "ok",
        "broker": "ok",
        "result_backend": "ok",
    }
