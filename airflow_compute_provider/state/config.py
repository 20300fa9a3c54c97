"""Which database the state store uses, resolved from Airflow's own configuration.

    resolve_location(conn_id)   asks Airflow, then decides (choose_location)
    choose_location(...)        the decision, pure:
        1. the Airflow connection ``conn_id`` (default ``compute_state_default``) exists:
           its URL (any SQLAlchemy URL), unless it points at the Airflow metadata database
        2. it does not: an embedded SQLite file, ``$AIRFLOW_HOME/compute_state.db``, but only
           when every configured executor runs tasks on this one machine; with workers on
           several machines each would keep its own file and the state would split
    open_state_store(conn_id)   a ``SqlTenantStateStore`` on the resolved database

A connection's URL: the ``sqlalchemy_url`` extra when set (for URLs Airflow's URI parser
mangles); otherwise built from the connection's parts, its type as the SQLAlchemy dialect
(``postgres`` meaning ``postgresql``) and its other extras as query parameters.

Airflow is imported lazily, inside the functions that ask it, so ``state/`` loads without it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa

from airflow_compute_provider.errors import ComputeConfigError
from airflow_compute_provider.state.sql import SqlTenantStateStore

DEFAULT_CONN_ID = "compute_state_default"
EMBEDDED_FILE = "compute_state.db"
URL_EXTRA = "sqlalchemy_url"
#: Airflow connection types whose SQLAlchemy dialect is spelled differently
_DIALECTS = {"postgres": "postgresql"}


@dataclass(frozen=True)
class StateLocation:
    url: str
    source: Literal["connection", "embedded"]
    conn_id: str

    def describe(self) -> str:
        """Where the state lives, without the password."""
        shown = sa.make_url(self.url).render_as_string(hide_password=True)
        origin = f"connection {self.conn_id!r}" if self.source == "connection" else "embedded SQLite"
        return f"{shown} ({origin})"


@dataclass(frozen=True)
class ExecutorInfo:
    name: str
    #: runs every task on the machine it runs on (LocalExecutor)
    single_machine: bool


def open_state_store(conn_id: str = DEFAULT_CONN_ID) -> SqlTenantStateStore:
    """The state store Airflow's configuration points at (see the module docstring)."""
    return SqlTenantStateStore(resolve_location(conn_id).url)


def resolve_location(conn_id: str = DEFAULT_CONN_ID) -> StateLocation:
    return choose_location(
        conn_id,
        connection_url=_connection_url(conn_id),
        executors=_configured_executors,
        airflow_home=_airflow_home(),
        metadata_url=_metadata_url(),
    )


def choose_location(
    conn_id: str,
    *,
    connection_url: str | None,
    executors: Sequence[ExecutorInfo] | Callable[[], Sequence[ExecutorInfo]],
    airflow_home: str | Path,
    metadata_url: str | None,
) -> StateLocation:
    """Decide where the state lives. ``executors`` may be a callable, asked only when needed."""
    if connection_url is not None:
        if metadata_url is not None and same_database(connection_url, metadata_url):
            raise ComputeConfigError(
                f"connection {conn_id!r} points at the Airflow metadata database; the compute "
                "state store must live in a database of its own",
                argument="conn_id",
            )
        return StateLocation(connection_url, "connection", conn_id)
    found = list(executors() if callable(executors) else executors)
    spread = [e.name for e in found if not e.single_machine]
    if spread:
        raise ComputeConfigError(
            f"no Airflow connection {conn_id!r} for the compute state store, and the embedded "
            f"SQLite fallback needs a single-machine executor, but {', '.join(spread)} runs tasks "
            "on several machines (each would keep its own state). Create the connection "
            f"{conn_id!r} with a SQLAlchemy URL, e.g. postgresql+psycopg2://user:password@host/db",
            argument="conn_id",
        )
    path = Path(airflow_home).expanduser() / EMBEDDED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    return StateLocation(sa.URL.create("sqlite", database=str(path)).render_as_string(), "embedded", conn_id)


def connection_url(
    conn_type: str | None,
    *,
    host: str | None = None,
    login: str | None = None,
    password: str | None = None,
    port: int | None = None,
    schema: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> str:
    """A SQLAlchemy URL from an Airflow connection's parts."""
    extra = dict(extra or {})
    if extra.get(URL_EXTRA):
        return str(extra[URL_EXTRA])
    if not conn_type:
        raise ComputeConfigError("the state store connection has no type (dialect)", argument="conn_id")
    query = {str(k): str(v) for k, v in extra.items() if isinstance(v, str | int | float | bool)}
    url = sa.URL.create(
        _DIALECTS.get(conn_type, conn_type),
        username=login or None,
        password=password or None,
        host=host or None,
        port=port or None,
        database=schema or None,
        query=query,
    )
    return url.render_as_string(hide_password=False)


def same_database(a: str, b: str) -> bool:
    """Whether two SQLAlchemy URLs name the same database (driver and credentials aside)."""
    first, second = sa.make_url(a), sa.make_url(b)
    if first.get_backend_name() != second.get_backend_name():
        return False
    if first.get_backend_name() == "sqlite":
        path = _sqlite_path(first)
        return path is not None and path == _sqlite_path(second)
    return (first.host or "localhost", first.port, first.database) == (
        second.host or "localhost",
        second.port,
        second.database,
    )


def _sqlite_path(url: sa.URL) -> str | None:
    if url.database in (None, "", ":memory:"):
        return None
    return os.path.realpath(url.database)


# -- asking Airflow (lazy imports: only these functions need it) ------------------------------


def _connection_url(conn_id: str) -> str | None:
    from airflow.sdk import BaseHook

    try:
        from airflow.sdk.exceptions import AirflowNotFoundException
    except ImportError:  # Airflow < 3.2 keeps it in airflow.exceptions
        from airflow.exceptions import AirflowNotFoundException  # type: ignore[no-redef]

    try:
        conn = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None
    return connection_url(
        conn.conn_type,
        host=conn.host,
        login=conn.login,
        password=conn.password,
        port=conn.port,
        schema=conn.schema,
        extra=conn.extra_dejson,
    )


def _configured_executors() -> list[ExecutorInfo]:
    from airflow.executors.executor_loader import ExecutorLoader

    found = []
    for name in ExecutorLoader.get_executor_names():
        label = name.alias or name.module_path
        try:
            executor_cls, _ = ExecutorLoader.import_executor_cls(name)
        except Exception:
            # An executor we cannot even import cannot vouch for running on one machine.
            found.append(ExecutorInfo(label, single_machine=False))
            continue
        found.append(ExecutorInfo(label, single_machine=bool(getattr(executor_cls, "is_local", False))))
    return found


def _airflow_home() -> str:
    try:
        from airflow.configuration import AIRFLOW_HOME
    except ImportError:
        return os.environ.get("AIRFLOW_HOME", "~/airflow")
    return str(AIRFLOW_HOME)


def _metadata_url() -> str | None:
    try:
        from airflow.configuration import conf

        value = conf.get("database", "sql_alchemy_conn", fallback=None)
    except Exception:
        return None  # a worker may have no metadata database configured at all
    if not value:
        return None
    try:
        sa.make_url(str(value))
    except sa.exc.ArgumentError:
        # An Airflow 3 task runs with its database access blocked: the supervisor sets the URL to
        # "airflow-db-not-allowed:///", which is no URL. There is no metadata database to avoid.
        return None
    return str(value)
