"""The Compute Health page's reads on both databases: recorded DAGs, visibility, pages, the upgrade.

The store is real (SQLite and PostgreSQL); who may read which DAG is given as a ``Visibility``
here (the auth manager's answer), and proven against Airflow's real auth manager in
``tests/slow/test_compute_health_ui.py``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from airflow_compute_provider.plugins import queries
from airflow_compute_provider.plugins.queries import Visibility
from airflow_compute_provider.plugins.summary import health_summary, resource_lookup
from airflow_compute_provider.state import (
    SCHEMA_VERSION,
    ResourceStatus,
    ResourceUpdate,
    SqlTenantStateStore,
    TaskInstanceRef,
)
from airflow_compute_provider.state.status import TenantStatus
from tests.unit.state.support import error, state_url_fixture, store_fixture

state_url = state_url_fixture()
store = store_fixture()


def _fail(
    store: SqlTenantStateStore, tenant: str, dag_id: str | None, code: str = "INVALID_CONFIGURATION"
) -> None:
    ref = TaskInstanceRef(dag_id, "manual__1", "provision") if dag_id else None
    execution = f"{dag_id or 'legacy'}:{tenant}"
    store.begin_operation(tenant, execution, "provision", "ecs", 1, task_instance=ref)
    store.record_intent(
        tenant,
        execution,
        provider="ecs",
        conn_id=None,
        locator={"cluster": "c"},
        unit_index=0,
        generation=0,
        idempotency_token=f"{tenant}-0-0",
    )
    store.record_resources(
        tenant,
        execution,
        [ResourceUpdate(0, 0, ResourceStatus.PENDING_CLEANUP, resource_id=f"task/{tenant}")],
    )
    store.finish_operation(tenant, execution, error(code), will_retry=False)


def test_begin_records_the_task_instance(store: SqlTenantStateStore) -> None:
    ref = TaskInstanceRef("etl", "manual__2026", "provision", 3)
    op = store.begin_operation("acme", "custom-id", "provision", "ecs", 1, task_instance=ref)
    assert op.task_instance == ref
    assert store.operations("acme")[0].task_instance == ref
    bare = store.begin_operation("other", "custom-id", "provision", "ecs", 1)
    assert bare.task_instance is None


def test_rows_of_unreadable_dags_are_absent_from_lists_counts_chart_and_lookups(
    store: SqlTenantStateStore,
) -> None:
    _fail(store, "alpha", "dag_a")
    _fail(store, "beta", "dag_b", code="PERMISSION_DENIED")
    _fail(store, "legacy", None, code="OUT_OF_MEMORY")
    # an execution id that names dag_a, written by dag_b: the recorded DAG decides, not the id
    store.begin_operation(
        "spoof", "dag_a:manual__1:provision:-1", "provision", "ecs", 1,
        task_instance=TaskInstanceRef("dag_b", "manual__1", "provision"),
    )  # fmt: skip
    assert queries.recorded_dag_ids(store) == ["dag_a", "dag_b"]
    now = datetime.now(UTC)

    only_a = health_summary(
        store, now=now, window=timedelta(hours=1), visibility=Visibility(frozenset({"dag_a"}))
    )
    assert [t["tenant_id"] for t in only_a["tenants"]] == ["alpha"]
    assert only_a["counts"] == {
        "needs_investigation": 1, "retry_pending": 0, "operation_in_progress": 0, "ready": 0,
    }  # fmt: skip
    assert [(s["provider"], s["code"], s["total"]) for s in only_a["errors"]["series"]] == [
        ("ecs", "INVALID_CONFIGURATION", 1)
    ]
    assert [r["resource_id"] for r in only_a["pending_cleanup"]] == ["task/alpha"]
    assert resource_lookup(store, "task/beta", Visibility(frozenset({"dag_a"}))) == []
    assert len(resource_lookup(store, "task/alpha", Visibility(frozenset({"dag_a"})))) == 1
    assert resource_lookup(store, "task/alpha", Visibility(frozenset({"dag_a"})), offset=1) == []
    assert [
        r["tenant_id"] for r in resource_lookup(store, "task/beta", Visibility(frozenset({"dag_b"})))
    ] == ["beta"]

    admin = health_summary(
        store, now=now, window=timedelta(hours=1), visibility=Visibility(frozenset({"dag_a", "dag_b"}), True)
    )
    assert {t["tenant_id"] for t in admin["tenants"]} == {"alpha", "beta", "legacy", "spoof"}
    assert sum(s["total"] for s in admin["errors"]["series"]) == 3
    nobody = health_summary(store, now=now, window=timedelta(hours=1), visibility=Visibility(frozenset()))
    assert nobody["tenants"] == []
    assert nobody["pending_cleanup"] == []
    assert nobody["errors"]["series"] == []
    assert set(nobody["counts"].values()) == {0}


def test_pages_are_stable_and_complete(store: SqlTenantStateStore) -> None:
    for i in range(7):
        _fail(store, f"t{i}", "dag_a")
    for i in range(5):
        store.begin_operation(
            f"r{i}", f"ok-{i}", "provision", "ecs", 1, task_instance=TaskInstanceRef("dag_a", "r", "t")
        )
        store.finish_operation(f"r{i}", f"ok-{i}", None, will_retry=False)
    vis = Visibility(frozenset({"dag_a"}))
    seen: list[tuple[str, str]] = []
    for offset in range(0, 12, 5):
        page, at = queries.tenants_page(
            store, vis, offset=offset, limit=5, counts=queries.tenant_counts(store, vis)
        )
        assert at.total == 12
        seen += [(t.status.value, t.tenant_id) for t in page]
    assert len(seen) == len(set(seen)) == 12
    statuses = [s for s, _ in seen]
    assert statuses == [TenantStatus.NEEDS_INVESTIGATION.value] * 7 + [TenantStatus.READY.value] * 5
    cleanup: list[str] = []
    for offset in (0, 3, 6):
        rows, at = queries.cleanup_page(store, vis, offset=offset, limit=3)
        assert at.total == 7
        cleanup += [str(r.resource_id) for r in rows]
    assert cleanup == sorted(f"task/t{i}" for i in range(7))


def test_a_version_1_database_is_upgraded_and_its_rows_recorded_no_dag(state_url: str) -> None:
    old = SqlTenantStateStore(state_url)
    old.begin_operation("acme", "run-1", "provision", "ecs", 1)
    old.close()
    # back to version 1: version 3's columns and indexes dropped (version 2 re-adds only what is missing)
    engine = sa.create_engine(state_url)
    with engine.begin() as conn:
        for index in (
            "ix_compute_state_tenants_status",
            "ix_compute_state_operations_dag",
            "ix_compute_state_operations_outcome_at",
            "ix_compute_state_resources_execution",
            "ix_compute_state_resources_resource_id",
        ):
            conn.execute(sa.text(f"DROP INDEX {index}"))
        for column in ("dag_id", "run_id", "task_id", "map_index"):
            conn.execute(sa.text(f"ALTER TABLE compute_state_operations DROP COLUMN {column}"))
        conn.execute(sa.text("DELETE FROM compute_state_schema_version WHERE version > 1"))
    engine.dispose()

    upgraded = SqlTenantStateStore(state_url)
    [op] = upgraded.operations("acme")
    assert op.task_instance is None  # its DAG was never recorded: administrators only
    upgraded.finish_operation("acme", "run-1", None, will_retry=False)
    ref = TaskInstanceRef("etl", "manual__1", "provision")
    assert (
        upgraded.begin_operation("acme", "run-2", "provision", "ecs", 1, task_instance=ref).task_instance
        == ref
    )
    assert queries.recorded_dag_ids(upgraded) == ["etl"]
    upgraded.close()
    engine = sa.create_engine(state_url)
    with engine.connect() as conn:
        versions = [r[0] for r in conn.execute(sa.text("SELECT version FROM compute_state_schema_version"))]
        indexes = {i["name"] for i in sa.inspect(conn).get_indexes("compute_state_resources")}
    engine.dispose()
    assert sorted(versions) == list(range(1, SCHEMA_VERSION + 1))
    assert "ix_compute_state_resources_resource_id" in indexes
