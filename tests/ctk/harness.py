"""Run Serverless Workflow documents through the real engine in embedded mode.

``SwEngine`` owns an ``EmbeddedEngine`` (worker and ticker threads, in-memory broker) on
a migrated SQLite file, one user, and a helper that stores a document as a workflow,
starts an execution with ``tasks.service.start_execution`` and waits for its end.
``PetstoreServer`` answers the CTK's external hosts (petstore.swagger.io, httpbin.org)
with the same shapes, on 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import shutil
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select

import models
from app.auth import create_user
from engine.definitions import detect_format
from models import Execution, StepExecution, Workflow, WorkflowVersion, session_scope
from settings import Settings

TERMINAL = {"succeeded", "failed", "cancelled"}


@dataclass
class Finished:
    """An execution at its end, with its step rows."""

    id: str
    status: str
    output: Any
    error: dict[str, Any] | None
    steps: list[StepExecution]

    def step(self, name: str) -> StepExecution | None:
        """The step row of the task called ``name`` (its pointer ends with /name)."""
        found = [s for s in self.steps if s.node_id.rsplit("/", 1)[-1] == name]
        return found[0] if found else None

    def ran(self) -> list[StepExecution]:
        """Serverless task rows that ran, in start order."""
        rows = [
            s
            for s in self.steps
            if s.node_id.startswith("/")
            and s.node_id != "/do"
            and s.started_at is not None
            and s.status in ("succeeded", "failed", "running", "cancelled")
        ]
        return sorted(rows, key=lambda s: (s.started_at, s.id))


class SwEngine:
    """An embedded Canvasflow for tests and benchmarks."""

    def __init__(
        self, data_dir: Path, template: Path | None = None, concurrency: int = 8, **settings: Any
    ) -> None:
        from tasks import runtime
        from tasks.embedded import EmbeddedEngine

        self._previous = runtime.current()

        data_dir.mkdir(parents=True, exist_ok=True)
        db = data_dir / "canvasflow.db"
        if template is not None:
            shutil.copyfile(template, db)
        else:
            import migrations

            migrations.upgrade(f"sqlite:///{db}")
        defaults: dict[str, Any] = {
            "data_dir": data_dir,
            "action_allow_private": True,
            "tick_seconds": 0.2,
        }
        self.settings = Settings(**{**defaults, **settings})
        self.url = self.settings.effective_database_url
        with session_scope(self.url) as session:
            user, self.api_key = create_user(session, f"sw-{time.monotonic_ns()}")
            self.user_id = user.id
        self.engine = EmbeddedEngine(self.settings, concurrency=concurrency).start()
        self._names = 0

    def stop(self) -> None:
        from tasks.celery_app import configure

        self.engine.stop()
        models.get_engine(self.url).dispose()
        if self._previous is not None:  # give the process back the settings it had
            configure(self._previous)

    def define(self, document: dict[str, Any], name: str | None = None) -> str:
        """Store ``document`` as a new workflow of the user; its id."""
        self._names += 1
        fmt = detect_format(document)
        with session_scope(self.url) as session:
            wf = Workflow(
                user_id=self.user_id, name=name or f"wf-{self._names}", format=fmt, version=1
            )
            session.add(wf)
            session.flush()
            session.add(
                WorkflowVersion(workflow_id=wf.id, version=1, format=fmt, definition=document)
            )
            return wf.id

    def start(self, workflow_id: str, input: Any = None) -> str:
        from tasks.celery_app import celery_app
        from tasks.service import start_execution

        execution, _ = start_execution(
            self.settings, celery_app, user_id=self.user_id, workflow_id=workflow_id, input=input
        )
        return execution.id

    def wait(self, execution_id: str, timeout: float = 30.0) -> Finished:
        """Poll until the execution is terminal (AssertionError on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            with session_scope(self.url) as session:
                exe = session.get(Execution, execution_id)
                assert exe is not None
                if exe.status in TERMINAL or time.monotonic() > deadline:
                    steps = list(
                        session.execute(
                            select(StepExecution)
                            .where(StepExecution.execution_id == execution_id)
                            .order_by(StepExecution.id)
                        ).scalars()
                    )
                    finished = Finished(exe.id, exe.status, exe.output, exe.error, steps)
                    if exe.status in TERMINAL:
                        return finished
                    raise AssertionError(
                        f"execution still {exe.status} after {timeout}s: "
                        f"{[(s.node_id, s.status) for s in steps]}"
                    )
            time.sleep(0.02)

    def run(self, document: dict[str, Any], input: Any = None, timeout: float = 30.0) -> Finished:
        return self.wait(self.start(self.define(document), input), timeout)

    def cancel(self, execution_id: str) -> None:
        from engine import runs

        with session_scope(self.url) as session:
            runs.cancel_execution(session, execution_id)


# --------------------------------------------------------------------------- petstore

PETS = {
    1: {
        "id": 1,
        "category": {"id": 1, "name": "dogs"},
        "name": "doggie",
        "photoUrls": ["string"],
        "tags": [{"id": 0, "name": "string"}],
        "status": "available",
    },
    2: {
        "id": 2,
        "category": {"id": 2, "name": "cats"},
        "name": "kitty",
        "photoUrls": [],
        "tags": [],
        "status": "pending",
    },
    3: {
        "id": 3,
        "category": {"id": 1, "name": "dogs"},
        "name": "Milou",
        "photoUrls": [],
        "tags": [],
        "status": "available",
    },
}

SWAGGER = {
    "swagger": "2.0",
    "info": {"title": "Swagger Petstore", "version": "1.0.7"},
    "host": "petstore.swagger.io",
    "basePath": "/v2",
    "schemes": ["https", "http"],
    "paths": {
        "/pet/findByStatus": {
            "get": {
                "tags": ["pet"],
                "operationId": "findPetsByStatus",
                "produces": ["application/json"],
                "parameters": [
                    {
                        "name": "status",
                        "in": "query",
                        "required": True,
                        "type": "array",
                        "items": {"type": "string", "enum": ["available", "pending", "sold"]},
                        "collectionFormat": "multi",
                    }
                ],
                "responses": {"200": {"description": "successful operation"}},
            }
        },
        "/pet/{petId}": {
            "get": {
                "tags": ["pet"],
                "operationId": "getPetById",
                "produces": ["application/json"],
                "parameters": [
                    {
                        "name": "petId",
                        "in": "path",
                        "required": True,
                        "type": "integer",
                        "format": "int64",
                    }
                ],
                "responses": {
                    "200": {"description": "successful operation"},
                    "404": {"description": "Pet not found"},
                },
            }
        },
        "/pet": {
            "post": {
                "tags": ["pet"],
                "operationId": "addPet",
                "consumes": ["application/json"],
                "parameters": [
                    {"in": "body", "name": "body", "required": True, "schema": {"type": "object"}}
                ],
                "responses": {"200": {"description": "successful operation"}},
            }
        },
    },
}


class _Handler(BaseHTTPRequestHandler):
    server: PetstoreServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Any, ctype: str = "application/json") -> None:
        raw = json.dumps(body).encode() if ctype == "application/json" else str(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.server.hits.append((self.command, self.path, dict(self.headers)))
        parts = urlsplit(self.path)
        segments = [s for s in parts.path.split("/") if s]
        if parts.path == "/v2/swagger.json":
            return self._send(200, SWAGGER)
        if parts.path == "/v2/pet/findByStatus":
            wanted = set(parse_qs(parts.query).get("status", []))
            return self._send(200, [p for p in PETS.values() if p["status"] in wanted])
        if len(segments) == 3 and segments[:2] == ["v2", "pet"]:
            pet = PETS.get(int(segments[2])) if segments[2].isdigit() else None
            if pet is None:
                return self._send(404, {"code": 1, "type": "error", "message": "Pet not found"})
            return self._send(200, pet)
        if len(segments) == 3 and segments[0] == "basic-auth":
            expected = "Basic " + base64.b64encode(f"{segments[1]}:{segments[2]}".encode()).decode()
            if self.headers.get("Authorization") != expected:
                return self._send(401, {"authenticated": False})
            return self._send(200, {"authenticated": True, "user": segments[1]})
        if parts.path == "/flaky":
            self.server.flaky_calls += 1
            if self.server.flaky_calls <= self.server.flaky_failures:
                return self._send(503, {"error": "try again"})
            return self._send(200, {"ok": True, "calls": self.server.flaky_calls})
        if parts.path == "/slow":
            time.sleep(float(parse_qs(parts.query).get("s", ["1"])[0]))
            return self._send(200, {"slow": True})
        if parts.path == "/echo":
            return self._send(
                200,
                {"method": "GET", "query": parse_qs(parts.query), "headers": dict(self.headers)},
            )
        return self._send(404, {"code": 404, "type": "unknown", "message": "not found"})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self.server.hits.append((self.command, self.path, dict(self.headers)))
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = body.decode(errors="replace")
        self._send(
            200,
            {"method": "POST", "path": self.path, "body": parsed, "headers": dict(self.headers)},
        )

    do_PUT = do_POST  # noqa: N815


class PetstoreServer(ThreadingHTTPServer):
    """The petstore and httpbin shapes the CTK calls, plus /flaky, /slow and /echo."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.hits: list[tuple[str, str, dict[str, str]]] = []
        self.flaky_calls = 0
        self.flaky_failures = 0
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def overrides(self) -> dict[str, str]:
        """settings.extra["host_overrides"] pointing the CTK's hosts here."""
        return {"petstore.swagger.io": self.base, "httpbin.org": self.base}

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
