"""The ``canvasflow`` console script, run as a real subprocess on the embedded default."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import models
from app import create_app
from settings import Settings
from tests.conftest import bearer

CANVASFLOW = Path(sys.executable).parent / "canvasflow"


def run_cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANVASFLOW_")}
    env["CANVASFLOW_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [str(CANVASFLOW), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=data_dir.parent,  # not the checkout: the installed script must work anywhere
    )


@pytest.fixture
def data_dir(tmp_path: Path):
    path = tmp_path / "data"
    yield path
    models.get_engine(Settings(data_dir=path).effective_database_url).dispose()


def test_db_upgrade_then_user_create_prints_a_working_key(data_dir: Path):
    upgraded = run_cli("db", "upgrade", data_dir=data_dir)
    assert upgraded.returncode == 0, upgraded.stderr
    assert (data_dir / "canvasflow.db").exists()

    created = run_cli("user", "create", "alice", data_dir=data_dir)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("cf_") and " " not in key

    client = create_app(Settings(data_dir=data_dir)).test_client()
    response = client.get("/api/workflows", headers=bearer(key))
    assert response.status_code == 200
    assert response.get_json() == {"items": [], "next_cursor": None}


def test_user_create_works_without_a_prior_upgrade(data_dir: Path):
    created = run_cli("user", "create", "bob", data_dir=data_dir)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    client = create_app(Settings(data_dir=data_dir)).test_client()
    assert client.get("/api/workflows", headers=bearer(key)).status_code == 200


def test_duplicate_user_fails_cleanly(data_dir: Path):
    assert run_cli("user", "create", "carol", data_dir=data_dir).returncode == 0
    again = run_cli("user", "create", "carol", data_dir=data_dir)
    assert again.returncode == 1
    assert "already exists" in again.stderr
    assert "Traceback" not in again.stderr


def test_user_key_issues_another_key(data_dir: Path):
    first = run_cli("user", "create", "dave", data_dir=data_dir).stdout.strip().splitlines()[-1]
    result = run_cli("user", "key", "dave", data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    second = result.stdout.strip().splitlines()[-1]
    assert second != first
    client = create_app(Settings(data_dir=data_dir)).test_client()
    assert client.get("/api/workflows", headers=bearer(second)).status_code == 200
    missing = run_cli("user", "key", "nobody", data_dir=data_dir)
    assert missing.returncode == 1 and "no user" in missing.stderr


def test_help_lists_the_contract_commands(data_dir: Path):
    result = run_cli("--help", data_dir=data_dir)
    assert result.returncode == 0
    for command in ("api", "db", "user"):
        assert f"  {command} " in result.stdout


def test_worker_refuses_a_queue_of_another_type_with_a_clear_message(data_dir: Path):
    """A classic queue left from an earlier setup: the worker says so and exits 1."""
    import secrets

    from kombu import Connection

    from tests.services import require_rabbitmq

    amqp = require_rabbitmq()
    name = f"cf_it_old_{secrets.token_hex(4)}"
    with Connection(amqp) as conn:
        conn.channel().queue_declare(queue=name, durable=True, auto_delete=False)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CANVASFLOW_")}
        env |= {
            "CANVASFLOW_DATA_DIR": str(data_dir),
            "CANVASFLOW_BROKER_URL": amqp,
            "CANVASFLOW_QUEUE": name,
        }
        done = subprocess.run(
            [str(CANVASFLOW), "worker", "-c", "1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=data_dir.parent,
        )
        assert done.returncode == 1, done.stderr
        assert f"queue {name!r}" in done.stderr
        assert "this setup wants 'quorum'" in done.stderr
        assert "CANVASFLOW_QUEUE_TYPE" in done.stderr
    finally:
        with Connection(amqp) as conn:
            conn.channel().queue_delete(name)
