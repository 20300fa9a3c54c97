"""The schema: created on first use, versioned, refused when newer; database failures as data."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from airflow_compute_provider.errors import (
    Classification,
    ComputeConfigError,
    ComputeOperationError,
    ErrorCode,
)
from airflow_compute_provider.state import SCHEMA_VERSION, SqlTenantStateStore, StateSchemaError
from tests.harness.ports import free_port
from tests.unit.state.support import STATE_TABLES, snapshot, state_url_fixture

state_url = state_url_fixture()


def _versions(url: str) -> list[int]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT version FROM compute_state_schema_version ORDER BY version"))
            return [row[0] for row in rows]
    finally:
        engine.dispose()


def test_the_schema_is_created_on_first_use_and_versioned(state_url: str) -> None:
    store = SqlTenantStateStore(state_url)
    assert snapshot(state_url) == {}  # opening alone touches nothing
    assert store.list_tenants() == []
    assert set(snapshot(state_url)) == set(STATE_TABLES)
    assert _versions(state_url) == list(range(1, SCHEMA_VERSION + 1))
    store.close()
    reopened = SqlTenantStateStore(state_url)
    reopened.begin_operation("acme", "run-1", "provision", "ecs", 1)
    assert _versions(state_url) == list(range(1, SCHEMA_VERSION + 1))  # not recorded twice
    reopened.close()


def test_many_first_users_create_the_schema_once(state_url: str) -> None:
    stores = [SqlTenantStateStore(state_url) for _ in range(6)]
    barrier = threading.Barrier(len(stores))
    failures: list[BaseException] = []

    def first_use(store: SqlTenantStateStore, index: int) -> None:
        barrier.wait()
        try:
            store.begin_operation(f"tenant-{index}", "run-1", "provision", "ecs", 1)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=first_use, args=(s, i)) for i, s in enumerate(stores)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for store in stores:
        store.close()
    assert failures == []
    assert _versions(state_url) == list(range(1, SCHEMA_VERSION + 1))
    check = SqlTenantStateStore(state_url)
    assert len(check.list_tenants()) == len(stores)
    check.close()


def test_a_newer_schema_refuses_older_code(state_url: str) -> None:
    SqlTenantStateStore(state_url).list_tenants()
    engine = sa.create_engine(state_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO compute_state_schema_version (version, applied_at, description) "
                "VALUES (:v, :at, 'from the future')"
            ),
            {"v": SCHEMA_VERSION + 1, "at": datetime.now(UTC).replace(tzinfo=None)},
        )
    engine.dispose()
    before = snapshot(state_url)
    store = SqlTenantStateStore(state_url)
    with pytest.raises(StateSchemaError) as refused:
        store.begin_operation("acme", "run-1", "provision", "ecs", 1)
    message = str(refused.value)
    assert f"schema version {SCHEMA_VERSION + 1}" in message
    assert f"up to {SCHEMA_VERSION}" in message
    assert isinstance(refused.value, ComputeConfigError)
    assert snapshot(state_url) == before
    store.close()


def test_an_unreachable_database_is_a_retriable_error_without_the_password() -> None:
    port = free_port()  # nothing listens there
    store = SqlTenantStateStore(f"postgresql+psycopg2://compute:s3cret-pw@127.0.0.1:{port}/state")
    with pytest.raises(ComputeOperationError) as failed:
        store.get_tenant("acme")
    error = failed.value.error
    assert (error.code, error.classification) == (
        ErrorCode.PROVIDER_TEMPORARILY_UNAVAILABLE,
        Classification.RETRIABLE,
    )
    assert error.root_cause.reason == "database_error"
    assert "s3cret-pw" not in error.model_dump_json()
    assert "s3cret-pw" not in repr(store)
    store.close()


def test_a_url_that_is_not_a_url_names_the_argument() -> None:
    with pytest.raises(ComputeConfigError) as refused:
        SqlTenantStateStore("not a url at all")
    assert refused.value.argument == "url"
