"""Engines and sessions, built from a URL (never from Flask)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the API read while a worker thread writes; busy_timeout waits instead of failing.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


@lru_cache(maxsize=16)
def get_engine(url: str) -> Engine:
    """One pooled engine per URL and process."""
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///"):
            from pathlib import Path

            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=20,
            max_overflow=40,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _async_commit(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("SET synchronous_commit TO off")
    cur.close()
    dbapi_conn.commit()


@lru_cache(maxsize=16)
def get_progress_engine(url: str, autocommit: bool = False) -> Engine:
    """The engine of a worker's step transitions: no fsync wait, no ping per checkout.

    A crash of PostgreSQL may lose the last few milliseconds of progress, which the ticker
    and redelivery redo (steps are at-least-once anyway); a dead pooled connection fails one
    transaction, which the worker retries on a fresh one.
    """
    if url.startswith("sqlite"):
        return get_engine(url)
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    engine = create_engine(
        url, pool_size=10, max_overflow=20, pool_pre_ping=False, pool_recycle=1800, **options
    )
    event.listen(engine, "connect", _async_commit)
    return engine


@lru_cache(maxsize=32)
def get_sessionmaker(
    url: str, progress: bool = False, autocommit: bool = False
) -> sessionmaker[Session]:
    bind = get_progress_engine(url, autocommit) if progress else get_engine(url)
    return sessionmaker(bind=bind, expire_on_commit=False, info={"progress": progress})


@contextmanager
def session_scope(url: str, progress: bool = False, autocommit: bool = False) -> Iterator[Session]:
    """A short transaction: commit on success, roll back on error.

    ``progress=True`` for step transitions on the hot path (see get_progress_engine);
    ``autocommit=True`` (with progress) only for work that is a single statement per
    consistency unit: each statement commits on its own, saving BEGIN and COMMIT trips.
    """
    session = get_sessionmaker(url, progress, autocommit and progress)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
