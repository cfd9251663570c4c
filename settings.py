"""Canvasflow settings: the only module that reads ``os.environ``.

Everything else receives a :class:`Settings` object. Unset, every setting falls back to
the *embedded default*: a SQLite file in a data directory, kombu's in-memory broker and
an in-memory result backend, so ``canvasflow dev`` needs no server at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

EMBEDDED_BROKER = "memory://"
EMBEDDED_RESULT_BACKEND = "cache+memory://"


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(value: str | None, default: int) -> int:
    return int(value) if value not in (None, "") else default


def _choice(value: str | None, allowed: tuple[str, ...], default: str) -> str:
    if value in (None, ""):
        return default
    value = value.strip().lower()
    if value not in allowed:
        raise ValueError(f"{value!r} is not one of {', '.join(allowed)}")
    return value


def _float(value: str | None, default: float) -> float:
    return float(value) if value not in (None, "") else default


@dataclass(frozen=True)
class Settings:
    """Runtime configuration. Build it with :meth:`from_env`, or directly in tests."""

    data_dir: Path = Path(".data")
    database_url: str = ""
    broker_url: str = EMBEDDED_BROKER
    result_backend: str = EMBEDDED_RESULT_BACKEND
    # Request bodies above this are refused with 413 before they are parsed.
    max_body_bytes: int = 10 * 1024 * 1024
    # SSRF guard for `action` nodes (CONTRACT.md section 3).
    action_allow_private: bool = False
    action_allowed_hosts: tuple[str, ...] = ()
    # Delays up to this many seconds use a broker countdown; longer ones park in the DB.
    short_delay_seconds: int = 60
    # How often the ticker repairs lost messages, wakes delays and fires cron triggers.
    tick_seconds: float = 1.0
    # A step message unseen for this long is considered lost and republished.
    lost_message_seconds: float = 30.0
    # A running step whose lease is older than this is re-queued (worker presumed dead).
    lease_seconds: float = 300.0
    # Pure nodes (no I/O) share a task, up to this many per message; 1 = a task per node.
    batch_nodes: int = 25
    # Webhook sync mode: how long to wait for a webhook_response node.
    webhook_sync_timeout_seconds: float = 30.0
    # Backpressure: refuse new executions while the broker holds more ready messages.
    max_queue_depth: int = 10_000
    # Expression evaluation wall-clock bound (jq can loop forever).
    expression_timeout_seconds: float = 2.0
    # Circuit breaker per upstream host for `action` calls.
    circuit_failure_threshold: int = 20
    circuit_reset_seconds: float = 30.0
    # Outbound requests per second per upstream host (0 = unlimited).
    action_rate_limit_per_host: float = 0.0
    # `run: shell|script|container` in Serverless Workflow documents.
    allow_run_tasks: bool = False
    worker_concurrency: int = 0  # 0 = Celery's default (number of CPUs)
    queue_name: str = "canvasflow"
    # RabbitMQ queue type of the work and dead-letter queues: quorum (replicated, the
    # production baseline of DESIGN.md) or classic. A queue keeps the type it was made with.
    queue_type: str = "quorum"
    log_level: str = "INFO"
    secret_key: str = "dev-insecure-secret"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def effective_database_url(self) -> str:
        """The configured database, or the embedded SQLite file in ``data_dir``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'canvasflow.db').resolve()}"

    @property
    def embedded_broker(self) -> bool:
        """True when the broker lives inside this process (no RabbitMQ)."""
        return self.broker_url.startswith("memory://")

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    @property
    def native_chords(self) -> bool:
        """Chords only where the result backend joins natively (DESIGN.md: no chord_unlock)."""
        return self.result_backend.startswith(("redis://", "rediss://", "cache+memory://"))

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Read ``CANVASFLOW_*`` variables; unset ones take the embedded default."""
        env = dict(os.environ if environ is None else environ)
        g = env.get
        hosts = tuple(
            h.strip().lower()
            for h in g("CANVASFLOW_ACTION_ALLOWED_HOSTS", "").split(",")
            if h.strip()
        )
        return cls(
            data_dir=Path(g("CANVASFLOW_DATA_DIR") or ".data"),
            database_url=g("CANVASFLOW_DATABASE_URL", ""),
            broker_url=g("CANVASFLOW_BROKER_URL") or EMBEDDED_BROKER,
            result_backend=g("CANVASFLOW_RESULT_BACKEND") or EMBEDDED_RESULT_BACKEND,
            max_body_bytes=_int(g("CANVASFLOW_MAX_BODY_BYTES"), 10 * 1024 * 1024),
            action_allow_private=_bool(g("CANVASFLOW_ACTION_ALLOW_PRIVATE")),
            action_allowed_hosts=hosts,
            short_delay_seconds=_int(g("CANVASFLOW_SHORT_DELAY_SECONDS"), 60),
            tick_seconds=_float(g("CANVASFLOW_TICK_SECONDS"), 1.0),
            lost_message_seconds=_float(g("CANVASFLOW_LOST_MESSAGE_SECONDS"), 30.0),
            lease_seconds=_float(g("CANVASFLOW_LEASE_SECONDS"), 300.0),
            batch_nodes=max(1, _int(g("CANVASFLOW_BATCH_NODES"), 25)),
            webhook_sync_timeout_seconds=_float(g("CANVASFLOW_WEBHOOK_SYNC_TIMEOUT"), 30.0),
            max_queue_depth=_int(g("CANVASFLOW_MAX_QUEUE_DEPTH"), 10_000),
            expression_timeout_seconds=_float(g("CANVASFLOW_EXPRESSION_TIMEOUT"), 2.0),
            circuit_failure_threshold=_int(g("CANVASFLOW_CIRCUIT_FAILURES"), 20),
            circuit_reset_seconds=_float(g("CANVASFLOW_CIRCUIT_RESET_SECONDS"), 30.0),
            action_rate_limit_per_host=_float(g("CANVASFLOW_ACTION_RATE_LIMIT"), 0.0),
            allow_run_tasks=_bool(g("CANVASFLOW_ALLOW_RUN_TASKS")),
            worker_concurrency=_int(g("CANVASFLOW_WORKER_CONCURRENCY"), 0),
            queue_name=g("CANVASFLOW_QUEUE") or "canvasflow",
            queue_type=_choice(g("CANVASFLOW_QUEUE_TYPE"), ("quorum", "classic"), "quorum"),
            log_level=g("CANVASFLOW_LOG_LEVEL") or "INFO",
            secret_key=g("CANVASFLOW_SECRET_KEY") or "dev-insecure-secret",
            extra=_extra(g),
        )


def _extra(g: Any) -> dict[str, Any]:
    """Less common knobs, kept in ``Settings.extra`` under their documented keys."""
    extra: dict[str, Any] = {}
    if g("CANVASFLOW_HEARTBEAT_TIMEOUT"):
        extra["heartbeat_timeout"] = float(g("CANVASFLOW_HEARTBEAT_TIMEOUT"))
    if g("CANVASFLOW_HEARTBEAT_SECONDS"):
        extra["heartbeat_interval"] = float(g("CANVASFLOW_HEARTBEAT_SECONDS"))
    if g("CANVASFLOW_RABBITMQ_MANAGEMENT_URL"):
        extra["rabbitmq_management_url"] = g("CANVASFLOW_RABBITMQ_MANAGEMENT_URL")
    return extra
