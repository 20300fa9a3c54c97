"""``Database``: one SQLAlchemy engine and the transactions every state-store write runs in.

    write(name, work)   one write transaction; ``work`` runs again when it raises ``LostRace``,
                        hits a unique key a concurrent insert took first, or the database asks
                        for a re-run (PostgreSQL serialization failure or deadlock, SQLite busy
                        without waiting); CONFLICT after ``MAX_ROUNDS`` lost races
    read(work)          one read transaction (re-run the same way)
    ensure_schema()     create / check the tables once per process (schema.py)

On SQLite every write starts with ``BEGIN IMMEDIATE``: the write lock is taken up front, so
racing writers queue for ``busy_timeout`` instead of failing halfway with "database is locked",
and the file runs in WAL mode so readers never wait. On PostgreSQL writes run at READ
COMMITTED; the version checks in ``sql.py`` catch what a concurrent writer changed.

A database failure leaves as ``ComputeOperationError`` with ``PROVIDER_TEMPORARILY_UNAVAILABLE``
(retriable), so a task fails with data rather than a driver traceback.
"""

from __future__ import annotations

import contextlib
import importlib.util
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import StaticPool

from airflow_compute_provider.errors import ComputeConfigError, ComputeError, ComputeOperationError, ErrorCode
from airflow_compute_provider.errors.model import RootCause
from airflow_compute_provider.state.rules import STORE_SOURCE
from airflow_compute_provider.state.schema import ensure_schema

T = TypeVar("T")

#: how often a write runs again after losing a race before it gives up with CONFLICT
MAX_ROUNDS = 12
#: PostgreSQL's serialization failure and deadlock: the transaction may simply run again
_PG_RETRYABLE = {"40001", "40P01"}
_PG_UNIQUE_VIOLATION = "23505"
_BEGIN_OPTION = "compute_state_begin"


class LostRace(Exception):
    """Another transaction changed a row between our read and our write; run again."""


class Database:
    def __init__(self, url: str | sa.URL, *, busy_timeout: float = 30.0) -> None:
        try:
            self.url = sa.make_url(url)
        except sa.exc.ArgumentError as exc:
            raise ComputeConfigError(f"not a SQLAlchemy URL: {exc}", argument="url") from None
        #: the database, named without its password (for messages and logs)
        self.where = self.url.render_as_string(hide_password=True)
        self.engine = _make_engine(self.url, busy_timeout)
        self._busy_timeout = busy_timeout
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        # Test instrumentation only, never set in production: called inside every write
        # transaction right before COMMIT with the write's name. The crash tests use it to hold a
        # transaction open and kill the process there.
        self.before_commit: Callable[[str], None] | None = None

    def dispose(self) -> None:
        self.engine.dispose()

    def write(self, name: str, work: Callable[[Connection], T]) -> T:
        self.ensure_schema()
        return self._transaction(name, work, begin="IMMEDIATE", hook=True)

    def read(self, work: Callable[[Connection], T]) -> T:
        self.ensure_schema()
        return self._transaction("read", work, begin="DEFERRED", hook=False)

    def ensure_schema(self) -> None:
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            self._transaction(
                "ensure_schema", lambda conn: ensure_schema(conn, self.where), begin="IMMEDIATE", hook=False
            )
            self._schema_ready = True

    def _transaction(self, name: str, work: Callable[[Connection], T], *, begin: str, hook: bool) -> T:
        """Run ``work`` in one transaction; again when it lost a race; CONFLICT after MAX_ROUNDS."""
        for round_ in range(MAX_ROUNDS):
            started = time.monotonic()
            try:
                with self._database_errors(started), self.engine.connect() as conn:
                    conn.execution_options(**{_BEGIN_OPTION: begin})
                    with conn.begin():
                        result = work(conn)
                        if hook and self.before_commit is not None:
                            self.before_commit(name)
                return result
            except sa.exc.IntegrityError as exc:
                if not _is_unique_violation(exc):
                    raise
                # A concurrent insert of the same key won; the next round reads its row.
            except LostRace:
                pass
            # Jittered and growing, so that racing workers do not collide in lockstep again.
            time.sleep(random.uniform(0, 0.005 * 2 ** min(round_, 6)))
        raise ComputeOperationError(
            ComputeError(
                code=ErrorCode.CONFLICT,
                message=f"{name} lost {MAX_ROUNDS} races in a row on the state store {self.where}",
                root_cause=RootCause(provider=STORE_SOURCE, reason="lost_race"),
            )
        )

    @contextlib.contextmanager
    def _database_errors(self, started: float) -> Iterator[None]:
        try:
            yield
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            if getattr(exc.orig, "pgcode", None) in _PG_RETRYABLE or self._busy_at_once(exc, started):
                raise LostRace(str(exc.orig)) from exc
            text = str(exc.orig).strip()
            detail = text.splitlines()[0] if text else type(exc.orig).__name__
            raise ComputeOperationError(
                ComputeError(
                    code=ErrorCode.PROVIDER_TEMPORARILY_UNAVAILABLE,
                    message=f"the state store database {self.where} failed: {detail}",
                    root_cause=RootCause(
                        provider=STORE_SOURCE,
                        provider_code=type(exc.orig).__name__,
                        provider_message=detail,
                        reason="database_error",
                    ),
                )
            ) from exc

    def _busy_at_once(self, exc: sa.exc.DBAPIError, started: float) -> bool:
        """SQLite said "locked" without waiting out ``busy_timeout``.

        SQLite skips its busy handler in a few cases (a WAL file being set up or recovered by
        another process, say) and asks the caller to run the transaction again; one that did
        wait the whole timeout is a real outage and is reported as one.
        """
        if self.url.get_backend_name() != "sqlite":
            return False
        message = str(exc.orig).lower()
        waited = time.monotonic() - started
        return ("locked" in message or "busy" in message) and waited < 0.9 * self._busy_timeout


def _make_engine(url: sa.URL, busy_timeout: float) -> Engine:
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(_with_installed_driver(url), pool_pre_ping=True)
    in_memory = url.database in (None, "", ":memory:")
    engine = sa.create_engine(
        url,
        # One shared connection keeps an in-memory database alive; use it from one thread.
        poolclass=StaticPool if in_memory else None,
        connect_args={"timeout": busy_timeout, "check_same_thread": False},
    )
    timeout_ms = int(busy_timeout * 1000)

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Stop the sqlite3 module from issuing its own BEGIN: on_begin chooses the kind.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {timeout_ms}")
        if not in_memory:
            _switch_to_wal(cursor, deadline=time.monotonic() + busy_timeout)
        cursor.close()

    def on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")

    sa.event.listen(engine, "connect", on_connect)
    sa.event.listen(engine, "begin", on_begin)
    return engine


#: PostgreSQL drivers in order of preference, for a URL that names none
_PG_DRIVERS = ("psycopg2", "psycopg")


def _with_installed_driver(url: sa.URL) -> sa.URL:
    """A driverless ``postgresql://`` URL gets a driver that is installed.

    SQLAlchemy's default differs between versions (psycopg2 before 2.1, psycopg since), while a
    connection made in the Airflow UI never names one; use whichever the deployment has.
    """
    if url.drivername != "postgresql":
        return url
    for driver in _PG_DRIVERS:
        if importlib.util.find_spec(driver) is not None:
            return url.set(drivername=f"postgresql+{driver}")
    return url


def _switch_to_wal(cursor: Any, deadline: float) -> None:
    """WAL mode, so readers never wait for the writer (it persists in the file once set).

    Switching a new file needs a moment of exclusive access; several processes opening the same
    new file at once may find it taken, and SQLite does not wait for it on their behalf.
    """
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(0.01, 0.05))


def _is_unique_violation(exc: sa.exc.IntegrityError) -> bool:
    orig = exc.orig
    return getattr(orig, "pgcode", None) == _PG_UNIQUE_VIOLATION or "UNIQUE constraint failed" in str(orig)
