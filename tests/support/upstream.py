"""A real local HTTP server standing in for the APIs `action` nodes call.

Routes (any method):
  /users/<id>              {"id", "name", "tier"}: even ids are "vip"
  /echo                    the request back: method, path, query, headers, body
  /status/<code>           answers that status with {"status": code}
  /flaky/<key>?fail=N&code=C   fails N times (status C, default 503) per key, then 200
  /gate/<key>              404 until open(key), then 200
  /slow?ms=M               sleeps M ms, then 200 {"slept_ms": M}
  /text                    text/plain "hello, world"
Every request is recorded (path, method, Idempotency-Key, time) for assertions.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Hit:
    method: str
    path: str
    idempotency_key: str | None
    at: float
    body: Any = None


@dataclass
class Upstream:
    url: str = ""
    hits: list[Hit] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    gates: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: Any = None

    def open(self, key: str) -> None:
        with self.lock:
            self.gates.add(key)

    def hits_for(self, path_prefix: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.path.startswith(path_prefix)]

    def keys(self, path_prefix: str) -> Counter[str | None]:
        return Counter(h.idempotency_key for h in self.hits_for(path_prefix))


def _handler(up: Upstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: with Nagle on, a keep-alive client waits
        # for the delayed ACK (40 ms a request).
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, payload: Any, ctype: str = "application/json") -> None:
            raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _handle(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode(errors="replace")
            with up.lock:
                up.hits.append(
                    Hit(
                        self.command,
                        parts.path,
                        self.headers.get("Idempotency-Key"),
                        time.time(),
                        body,
                    )
                )
            seg = parts.path.strip("/").split("/")
            if seg[0] == "users" and len(seg) == 2:
                uid = seg[1]
                tier = "vip" if uid.isdigit() and int(uid) % 2 == 0 else "basic"
                return self._reply(200, {"id": uid, "name": f"User {uid}", "tier": tier})
            if seg[0] == "echo":
                return self._reply(
                    200,
                    {
                        "method": self.command,
                        "path": parts.path,
                        "query": query,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                    },
                )
            if seg[0] == "status" and len(seg) == 2:
                return self._reply(int(seg[1]), {"status": int(seg[1])})
            if seg[0] == "flaky" and len(seg) == 2:
                fail = int(query.get("fail", "2"))
                with up.lock:
                    up.failures[seg[1]] += 1
                    n = up.failures[seg[1]]
                if n <= fail:
                    return self._reply(int(query.get("code", "503")), {"attempt": n})
                return self._reply(200, {"attempt": n, "ok": True})
            if seg[0] == "gate" and len(seg) == 2:
                with up.lock:
                    ok = seg[1] in up.gates
                return self._reply(200 if ok else 404, {"open": ok})
            if seg[0] == "slow":
                ms = int(query.get("ms", "500"))
                time.sleep(ms / 1000)
                return self._reply(200, {"slept_ms": ms})
            if seg[0] == "text":
                return self._reply(200, b"hello, world", "text/plain")
            return self._reply(404, {"error": "no such route"})

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    return Handler


def start_upstream() -> Upstream:
    up = Upstream()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(up))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    up.server = server
    up.url = f"http://127.0.0.1:{server.server_address[1]}"
    return up
