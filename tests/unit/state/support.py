"""Shared pieces of the state-store tests: the store on both databases, snapshots, workers.

    state_url_fixture() / store_fixture()   fixtures parametrized over SQLite (a file in
                                            tmp_path) and PostgreSQL (a fresh database from
                                            tests/harness/postgres.py); assign them in a test
                                            module to use them there
    snapshot(url)                           every state table's rows, to prove "writes nothing"
    error(code)                             a ComputeError for a code
    begin_in_child / hold_in_child          bodies of the processes the race and crash tests start

The child bodies live here, not in a test module, so ``forkserver`` children import only this.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_compute_provider.errors import ComputeError, ComputeOperationError, ErrorCode
from airflow_compute_provider.state import ResourceUpdate, SqlTenantStateStore

STATE_TABLES = (
    "compute_state_schema_version",
    "compute_state_tenants",
    "compute_state_operations",
    "compute_state_resources",
    "compute_state_transitions",
)

EXEC = "etl:manual__2026-01-01T00:00:00+00:00:provision:-1"
OTHER_EXEC = "etl:scheduled__2026-01-02T00:00:00+00:00:provision:-1"


def state_url_fixture() -> Any:
    @pytest.fixture(
        params=[
            pytest.param("sqlite", id="sqlite"),
            pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
        ]
    )
    def state_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
        if request.param == "sqlite":
            return f"sqlite:///{tmp_path}/state.db"
        url: str = request.getfixturevalue("postgres_db_url")
        return url

    return state_url


def store_fixture() -> Any:
    @pytest.fixture
    def store(state_url: str) -> Iterator[SqlTenantStateStore]:
        opened = SqlTenantStateStore(state_url)
        yield opened
        opened.close()

    return store


def snapshot(url: str) -> dict[str, list[str]]:
    """Every row of every state table, through a connection of its own."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            return {
                name: [repr(tuple(row)) for row in conn.execute(sa.text(f"SELECT * FROM {name} ORDER BY 1"))]
                for name in STATE_TABLES
                if inspector.has_table(name)
            }
    finally:
        engine.dispose()


def error(code: ErrorCode, message: str = "it failed", **fields: Any) -> ComputeError:
    return ComputeError(code=code, message=message, **fields)


# -- child processes ----------------------------------------------------------------------------


def begin_in_child(url: str, tenant_id: str, execution_id: str, channels: tuple[Any, Any, Any]) -> None:
    """Open a store, say ready, wait for the start signal, race ``begin_operation``.

    ``channels`` is (ready queue, start event, results queue); every outcome, a crash included,
    ends up in the results queue so the parent never waits on silence.
    """
    ready, go, results = channels
    outcome, said_ready = "did not run", False
    try:
        store = SqlTenantStateStore(url)
        try:
            store.get_tenant(tenant_id)  # connect and check the schema before the race starts
            ready.put(execution_id)
            said_ready = True
            go.wait(60)
            store.begin_operation(tenant_id, execution_id, "provision", "ecs", 1)
            outcome = "won"
        finally:
            store.close()
    except ComputeOperationError as exc:
        outcome = exc.error.code.value
    except BaseException as exc:
        outcome = f"{type(exc).__name__}: {exc}"
    finally:
        if not said_ready:
            ready.put(execution_id)
        results.put((execution_id, outcome))


def hold_in_child(url: str, action: str, paused: Any) -> None:
    """Run one transition and stop inside its transaction, right before COMMIT, until killed."""
    store = SqlTenantStateStore(url)

    def pause(_name: str) -> None:
        paused.set()
        time.sleep(600)  # the parent SIGKILLs us here

    store._db.before_commit = pause
    TRANSITIONS[action](store)


def _begin_other(store: SqlTenantStateStore) -> None:
    store.begin_operation("acme", OTHER_EXEC, "provision", "ecs", 1)


def _finish_failed(store: SqlTenantStateStore) -> None:
    store.finish_operation("acme", EXEC, error(ErrorCode.CONTAINER_FAILED), will_retry=False)


def _release(store: SqlTenantStateStore) -> None:
    store.release("acme", "looked at it", force=True)


def _resources(store: SqlTenantStateStore) -> None:
    store.record_resources("acme", EXEC, [ResourceUpdate(0, 1, "running", resource_id="task/0")])


#: the transitions the crash test interrupts, each from the state ``prepare_for_crash`` leaves
TRANSITIONS = {
    "begin_operation": _begin_other,
    "finish_operation": _finish_failed,
    "release": _release,
    "record_resources": _resources,
}


def prepare_for_crash(store: SqlTenantStateStore, action: str) -> None:
    """The state before the interrupted transition: ``acme`` held by EXEC (or ready, for begin)."""
    store.begin_operation("acme", EXEC, "provision", "ecs", 1)
    store.record_intent(
        "acme",
        EXEC,
        provider="ecs",
        conn_id="aws_default",
        locator={"region": "eu-west-1", "cluster": "batch"},
        unit_index=0,
        generation=1,
        idempotency_token="cx0-u0-g1",
    )
    if action == "begin_operation":
        store.finish_operation("acme", EXEC, None, will_retry=False)
