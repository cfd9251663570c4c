"""action: one HTTP attempt with requests; the task decides about retries.

Connection errors, timeouts, 429 and 5xx are retryable; other 4xx are not (CONTRACT.md).
Every attempt carries ``Idempotency-Key: <execution id>:<node id>``.
"""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import urljoin

import requests

from engine.errors import StepError
from engine.expressions import render
from engine.graph import Node

from . import ssrf, upstream
from .env import HandlerEnv

MAX_REDIRECTS = 5
MAX_RESPONSE_BYTES = 10 * 1024 * 1024
_local = threading.local()


def _session() -> requests.Session:
    # One pooled session per worker thread: keep-alive to the same upstream.
    s = getattr(_local, "session", None)
    if s is None:
        s = requests.Session()
        s.trust_env = False
        _local.session = s
    return s


def _decode(resp: requests.Response, raw: bytes) -> Any:
    text = raw.decode(resp.encoding or "utf-8", errors="replace")
    ctype = resp.headers.get("Content-Type", "")
    if "json" in ctype or text[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            if "json" in ctype:
                return text
    return text


def _read(resp: requests.Response) -> bytes:
    chunks, size = [], 0
    for chunk in resp.iter_content(65536):
        size += len(chunk)
        if size > MAX_RESPONSE_BYTES:
            raise StepError(
                f"response larger than {MAX_RESPONSE_BYTES} bytes", error_type="response_too_large"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def handle(node: Node, data: Any, context: dict[str, Any], env: HandlerEnv) -> Any:
    cfg = node.config
    url = render(cfg["url"], context)
    if not isinstance(url, str):
        raise StepError(
            f"url must render to a string, got {type(url).__name__}", error_type="invalid_config"
        )
    method = str(cfg.get("method", "GET")).upper()
    headers = {str(k): str(v) for k, v in (render(cfg.get("headers") or {}, context) or {}).items()}
    headers["Idempotency-Key"] = env.idempotency_key
    query = render(cfg.get("query") or {}, context)
    kwargs: dict[str, Any] = {"params": query or None}
    if "body" in cfg:
        body = render(cfg["body"], context)
        if isinstance(body, str | bytes):
            kwargs["data"] = body
        else:
            kwargs["json"] = body
    timeout = float(env.timeout_seconds or cfg.get("timeout_seconds") or 30)
    breaker = upstream.for_url(url, env.settings)
    breaker.before_call()
    try:
        resp, raw = _send(method, url, headers, kwargs, timeout, env)
    except requests.Timeout as exc:
        breaker.record(False)
        raise StepError(
            f"{method} {url} timed out after {timeout}s", error_type="timeout", retryable=True
        ) from exc
    except requests.ConnectionError as exc:
        breaker.record(False)
        raise StepError(
            f"{method} {url} failed to connect: {exc}",
            error_type="connection_error",
            retryable=True,
        ) from exc
    except requests.RequestException as exc:
        raise StepError(f"{method} {url} failed: {exc}", error_type="request_error") from exc
    result = {"status": resp.status_code, "headers": dict(resp.headers), "body": _decode(resp, raw)}
    breaker.record(resp.status_code < 500)
    if resp.status_code == 429 or resp.status_code >= 500:
        raise StepError(
            f"{method} {url} answered {resp.status_code}",
            error_type="http_error",
            retryable=True,
            details={"response": result, "retry_after": resp.headers.get("Retry-After")},
        )
    if resp.status_code >= 400:
        raise StepError(
            f"{method} {url} answered {resp.status_code}",
            error_type="http_error",
            details={"response": result},
        )
    return result


def _send(
    method: str,
    url: str,
    headers: dict[str, str],
    kwargs: dict[str, Any],
    timeout: float,
    env: HandlerEnv,
) -> tuple[requests.Response, bytes]:
    for _ in range(MAX_REDIRECTS + 1):
        ssrf.check_url(url, env.settings)
        resp = _session().request(
            method,
            url,
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
            stream=True,
            **kwargs,
        )
        try:
            if resp.is_redirect and "Location" in resp.headers:
                url = urljoin(url, resp.headers["Location"])
                if resp.status_code in (301, 302, 303) and method != "HEAD":
                    method, kwargs = "GET", {"params": None}
                continue
            return resp, _read(resp)
        finally:
            resp.close()
    raise StepError(f"more than {MAX_REDIRECTS} redirects", error_type="too_many_redirects")
