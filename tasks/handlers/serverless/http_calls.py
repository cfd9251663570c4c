"""``call: http`` for the interpreter: one exchange, SSRF-checked, never following redirects.

Each call carries ``Idempotency-Key: <execution id>:<node id>:<uri>:<n>``, ``n`` counting
the calls to that URI in this node run, so a re-run node repeats the same keys.
"""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

import requests

from engine.errors import StepError
from engine.serverless import WorkflowError
from settings import Settings

from .. import ssrf

MAX_RESPONSE_BYTES = 10 * 1024 * 1024


class HttpCaller:
    """HTTP for one node run: a session per thread, idempotency keys counted per URI."""

    def __init__(self, settings: Settings, execution_id: str, node_id: str) -> None:
        self.settings = settings
        self.execution_id = execution_id
        self.node_id = node_id
        self._lock = threading.Lock()
        self._calls: dict[str, int] = {}
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False
        return session

    def close(self) -> None:
        """Close this thread's session, if it opened one."""
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()

    def _target(self, uri: str) -> str:
        """Where the request really goes: ``settings.extra["host_overrides"]`` (tests only)."""
        overrides = self.settings.extra.get("host_overrides") or {}
        parts = urlsplit(uri)
        base = overrides.get((parts.hostname or "").lower())
        if not base:
            return uri
        return base.rstrip("/") + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def call(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        """One HTTP exchange, SSRF-checked, never following redirects."""
        uri = str(request["uri"])
        target = self._target(uri)
        method = str(request["method"]).upper()
        try:
            ssrf.check_url(target, self.settings)
        except StepError as exc:
            kind = "configuration" if exc.error_type == "invalid_url" else "communication"
            raise WorkflowError.standard(
                kind, exc.detail, status=403 if kind == "communication" else None
            ) from None
        with self._lock:
            count = self._calls[uri] = self._calls.get(uri, 0) + 1
        headers = {
            "Idempotency-Key": f"{self.execution_id}:{self.node_id}:{uri}:{count}",
            **request.get("headers", {}),
        }
        kwargs: dict[str, Any] = {}
        body = request.get("body")
        if isinstance(body, str | bytes):
            kwargs["data"] = body.encode() if isinstance(body, str) else body
        elif body is not None:
            kwargs["json"] = body
        try:
            resp = self._session().request(
                method,
                target,
                headers=headers,
                timeout=max(0.001, timeout),
                allow_redirects=False,
                stream=True,
                **kwargs,
            )
            try:
                chunks, size = [], 0
                for chunk in resp.iter_content(65536):
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        raise WorkflowError.standard(
                            "communication",
                            f"{method} {uri}: response larger than {MAX_RESPONSE_BYTES} bytes",
                        )
                    chunks.append(chunk)
            finally:
                resp.close()
        except requests.Timeout:
            raise WorkflowError.standard(
                "timeout", f"{method} {uri} timed out after {timeout:.1f}s"
            ) from None
        except requests.RequestException as exc:
            raise WorkflowError.standard(
                "communication",
                f"{method} {uri} failed: {exc}",
                status=503,
                title="Service Unavailable",
            ) from None
        return {
            "statusCode": resp.status_code,
            "headers": dict(resp.headers),
            "content": b"".join(chunks),
        }
