"""Tries as the state store numbers and guards them, on SQLite and on a real PostgreSQL server.

A try is (execution, attempt) plus the token of the process running it. The store numbers an
execution's tries itself; every write of a try names it, and a write from a try that is no
longer the newest (a zombie, the older process of a double run) is refused and changes nothing.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from airflow_compute_provider.errors import ErrorCode
from airflow_compute_provider.state import (
    OperationStatus,
    ResourceUpdate,
    SqlTenantStateStore,
    SupersededTryError,
    TenantStatus,
    TryRef,
)
from airflow_compute_provider.state.schema import _METADATA
from tests.unit.state.support import EXEC, error, snapshot, state_url_fixture, store_fixture

state_url = state_url_fixture()
store = store_fixture()

TI = "etl/manual__2026-01-01T00:00:00+00:00/provision/-1"
NEXT_RUN_TI = "etl/manual__2026-01-02T00:00:00+00:00/provision/-1"
LOCATOR = {"region": "eu-west-1", "cluster": "batch"}


def begin(store: SqlTenantStateStore, token: str, airflow_try: int = 1, ti: str = TI) -> TryRef:
    op = store.begin_operation("acme", EXEC, "provision", "ecs", airflow_try, token=token, airflow_ti=ti)
    assert op.try_token == token
    return op.ref


def intend(store: SqlTenantStateStore, by: TryRef, unit: int = 0, generation: int = 1) -> None:
    store.record_intent(
        "acme",
        EXEC,
        provider="ecs",
        conn_id="aws_default",
        locator=LOCATOR,
        unit_index=unit,
        generation=generation,
        idempotency_token=f"cx0-u{unit}-g{generation}",
        by=by,
    )


def every_write(store: SqlTenantStateStore, by: TryRef) -> dict[str, object]:
    """Each write a try makes, as a callable, for the refusal tests."""
    return {
        "record_intent": lambda: intend(store, by, unit=5),
        "record_resources": lambda: store.record_resources(
            "acme", EXEC, [ResourceUpdate(0, 1, "running", resource_id="task/0")], by=by
        ),
        "record_outcome": lambda: store.record_outcome(
            "acme", EXEC, error(ErrorCode.CONTAINER_FAILED), by=by
        ),
        "finish_operation": lambda: store.finish_operation(
            "acme", EXEC, error(ErrorCode.CONTAINER_FAILED), will_retry=False, by=by
        ),
        "heartbeat": lambda: store.heartbeat("acme", EXEC, by=by),
    }


# -- tries numbered by the store ----------------------------------------------------------------


def test_tries_are_numbered_per_execution_and_keep_airflows_try_number(store: SqlTenantStateStore) -> None:
    first = begin(store, "worker-a:1:aa")
    store.finish_operation("acme", EXEC, error(ErrorCode.OPERATION_TIMEOUT), will_retry=False, by=first)
    # A new DAG run of the same execution id: Airflow's try number starts at 1 again.
    second = begin(store, "worker-b:2:bb", airflow_try=1, ti=NEXT_RUN_TI)
    assert second.attempt == 2
    ops = store.operations("acme")
    assert [(o.attempt, o.airflow_try_number, o.airflow_ti) for o in ops] == [
        (2, 1, NEXT_RUN_TI),
        (1, 1, TI),
    ]
    tenant = store.get_tenant("acme")
    assert tenant is not None
    assert (tenant.status, tenant.attempt) == (TenantStatus.OPERATION_IN_PROGRESS, 2)
    # Its writes name try 2; ledger rows of try 1 are the same execution's, so it can adopt them.
    intend(store, second)
    assert [e.unit_index for e in store.ledger("acme", EXEC)] == [0]


def test_a_retry_and_a_clear_are_the_next_tries(store: SqlTenantStateStore) -> None:
    first = begin(store, "w:1:a", airflow_try=1)
    store.finish_operation("acme", EXEC, error(ErrorCode.PROVIDER_THROTTLED), will_retry=True, by=first)
    retry = begin(store, "w:2:b", airflow_try=2)
    store.finish_operation("acme", EXEC, None, will_retry=False, by=retry)
    cleared = begin(store, "w:3:c", airflow_try=3)
    assert (first.attempt, retry.attempt, cleared.attempt) == (1, 2, 3)


# -- zombies: a try that is no longer the newest ------------------------------------------------


@pytest.mark.parametrize(
    "write", ["record_intent", "record_resources", "record_outcome", "finish_operation", "heartbeat"]
)
def test_a_zombie_try_cannot_write_anything(
    store: SqlTenantStateStore, state_url: str, write: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Airflow gave up on try 1 (its worker lost its heartbeat) and began try 2; try 1's process
    still runs. Whatever it writes is refused, with a clear log line, and nothing changes."""
    zombie = begin(store, "worker-a:11:aa", airflow_try=1)
    intend(store, zombie)
    newest = begin(store, "worker-b:22:bb", airflow_try=2)
    assert newest.attempt == 2
    before = snapshot(state_url)
    with (
        caplog.at_level(logging.WARNING, logger="airflow_compute_provider.state.sql"),
        pytest.raises(SupersededTryError) as refused,
    ):
        every_write(store, zombie)[write]()  # type: ignore[operator]
    assert snapshot(state_url) == before
    assert refused.value.writer == "try 1 (worker-a:11:aa)"
    assert refused.value.newest == "try 2 (worker-b:22:bb)"
    assert f"{write} refused: try 1 (worker-a:11:aa)" in caplog.text
    assert "no longer the newest try" in caplog.text


def test_the_newest_try_writes_as_before(store: SqlTenantStateStore) -> None:
    begin(store, "worker-a:11:aa", airflow_try=1)
    newest = begin(store, "worker-b:22:bb", airflow_try=2)
    intend(store, newest)
    for name, write in every_write(store, newest).items():
        if name != "finish_operation":
            write()  # type: ignore[operator]
    tenant = store.finish_operation(
        "acme", EXEC, error(ErrorCode.CONTAINER_FAILED), will_retry=False, by=newest
    )
    assert tenant.status is TenantStatus.NEEDS_INVESTIGATION


def test_a_zombie_cannot_release_the_tenant_a_newer_try_holds(store: SqlTenantStateStore) -> None:
    zombie = begin(store, "worker-a:11:aa", airflow_try=1)
    begin(store, "worker-b:22:bb", airflow_try=2)
    with pytest.raises(SupersededTryError):
        store.finish_operation("acme", EXEC, None, will_retry=False, by=zombie)
    tenant = store.get_tenant("acme")
    assert tenant is not None
    assert (tenant.status, tenant.attempt, tenant.held) == (TenantStatus.OPERATION_IN_PROGRESS, 2, True)


# -- double runs: the same Airflow try in two processes -----------------------------------------


def test_the_same_try_begun_again_by_its_own_process_changes_nothing(
    store: SqlTenantStateStore, state_url: str
) -> None:
    first = begin(store, "worker-a:11:aa")
    before = snapshot(state_url)
    assert begin(store, "worker-a:11:aa") == first
    assert snapshot(state_url) == before


def test_a_double_run_the_newest_begin_takes_the_try_over(
    store: SqlTenantStateStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Airflow runs the same try twice (rescheduled after its worker was thought dead): the second
    begin keeps the attempt and takes it over; the first process can no longer launch."""
    first = begin(store, "worker-a:11:aa")
    intend(store, first, unit=0)
    with caplog.at_level(logging.WARNING, logger="airflow_compute_provider.state.sql"):
        second = begin(store, "worker-b:22:bb")
    assert second == TryRef(1, "worker-b:22:bb")
    assert "takes the try over from worker-a:11:aa" in caplog.text
    with pytest.raises(SupersededTryError):
        intend(store, first, unit=1)  # the first process cannot launch another unit
    intend(store, second, unit=0)  # the second re-sends the same intent: same token, same unit
    assert [(e.unit_index, e.attempts) for e in store.ledger("acme", EXEC)] == [(0, 2)]
    [op] = store.operations("acme")
    assert (op.attempt, op.try_token, op.status) == (1, "worker-b:22:bb", OperationStatus.IN_PROGRESS)


def test_a_double_run_after_the_first_recorded_its_outcome_starts_over(store: SqlTenantStateStore) -> None:
    first = begin(store, "worker-a:11:aa")
    store.record_outcome("acme", EXEC, error(ErrorCode.OPERATION_TIMEOUT), by=first)
    second = begin(store, "worker-b:22:bb")
    [op] = store.operations("acme")
    assert (op.status, op.error, op.outcome_at) == (OperationStatus.IN_PROGRESS, None, None)
    with pytest.raises(SupersededTryError):
        store.finish_operation("acme", EXEC, error(ErrorCode.OPERATION_TIMEOUT), will_retry=True, by=first)
    store.finish_operation("acme", EXEC, None, will_retry=False, by=second)


def test_racing_begins_of_one_try_leave_exactly_one_owner(state_url: str) -> None:
    """Two processes begin the same Airflow try at once: one transaction wins, the other takes
    over after it (newest begin wins); either way exactly one token can still write."""
    stores = [SqlTenantStateStore(state_url) for _ in range(2)]
    stores[0].get_tenant("acme")  # the schema exists before the race
    barrier = threading.Barrier(2)
    refs: dict[int, TryRef] = {}

    def run(index: int) -> None:
        barrier.wait()
        refs[index] = begin(stores[index], f"worker-{index}:{index}:x")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert {r.attempt for r in refs.values()} == {1}
    [op] = stores[0].operations("acme")
    owners, losers = 0, 0
    for index, ref in refs.items():
        try:
            intend(stores[index], ref, unit=index)
            owners += 1
        except SupersededTryError:
            losers += 1
    assert (owners, losers) == (1, 1)
    assert op.try_token in {r.token for r in refs.values()}
    for opened in stores:
        opened.close()


# -- heartbeats and the database's clock --------------------------------------------------------


def test_a_heartbeat_renews_the_try_with_the_databases_clock(store: SqlTenantStateStore) -> None:
    try_ = begin(store, "worker-a:11:aa")
    [started] = store.operations("acme")
    assert started.heartbeat_at == started.started_at
    db_now = store.now()
    assert abs(db_now - datetime.now(UTC)) < timedelta(minutes=5)  # the same host here
    deadline = db_now + timedelta(minutes=30)
    beat = store.heartbeat("acme", EXEC, by=try_, live_until=deadline)
    assert beat.heartbeat_at is not None
    assert beat.heartbeat_at >= started.heartbeat_at
    assert beat.live_until == deadline
    intend(store, try_)  # a write of the try is a sign of life too
    [after] = store.operations("acme")
    assert after.heartbeat_at is not None
    assert after.heartbeat_at >= beat.heartbeat_at


def test_timestamps_come_from_the_database_not_the_writer(
    store: SqlTenantStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer whose clock runs two hours fast still stamps the database's time: simulated by
    skewing the clock this process's Python sees (``datetime.now``) for the store's modules;
    the database answers with its own."""
    store.get_tenant("acme")  # open the database first

    class Skewed(datetime):
        @classmethod
        def now(cls, tz: object = None) -> Skewed:  # type: ignore[override]
            real = datetime.now(UTC) + timedelta(hours=2)
            return cls.fromtimestamp(real.timestamp(), tz=UTC)  # type: ignore[return-value]

    from airflow_compute_provider.state import clock, sql

    monkeypatch.setattr(sql, "datetime", Skewed)
    monkeypatch.setattr(clock, "datetime", Skewed)
    begin(store, "worker-a:11:aa")
    monkeypatch.undo()
    [op] = store.operations("acme")
    assert abs(op.started_at - datetime.now(UTC)) < timedelta(minutes=5)


def test_a_heartbeat_needs_a_try_and_an_aware_time(store: SqlTenantStateStore) -> None:
    from airflow_compute_provider.errors import ComputeConfigError

    try_ = begin(store, "worker-a:11:aa")
    with pytest.raises(ComputeConfigError, match="by"):
        store.heartbeat("acme", EXEC, by=(1, "x"))  # type: ignore[arg-type]
    with pytest.raises(ComputeConfigError, match="live_until"):
        store.heartbeat("acme", EXEC, by=try_, live_until=datetime(2026, 1, 1))


# -- the migration --------------------------------------------------------------------------------


def test_a_version_1_database_is_upgraded_and_its_tries_stay_writable(state_url: str) -> None:
    """A database from before try identity (schema version 1): the new columns are added, and a
    try recorded then (no token) accepts the writes of whoever names its attempt."""
    engine = sa.create_engine(state_url)
    v2_columns = ("try_token", "airflow_ti", "airflow_try_number", "heartbeat_at", "live_until")
    old = sa.MetaData()
    for table in _METADATA.sorted_tables:
        kept = [c for c in table.columns if c.name not in v2_columns]
        sa.Table(
            table.name,
            old,
            *[
                sa.Column(
                    c.name,
                    c.type,
                    primary_key=c.primary_key,
                    nullable=c.nullable,
                    autoincrement=c.autoincrement,
                )
                for c in kept
            ],
        )
    now = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as conn:
        old.create_all(conn)
        conn.execute(
            sa.text(
                "INSERT INTO compute_state_schema_version (version, applied_at, description) "
                "VALUES (1, :at, 'v1')"
            ),
            {"at": now},
        )
        conn.execute(
            sa.text(
                "INSERT INTO compute_state_tenants (tenant_id, status, execution_id, attempt, held, "
                "version, created_at, updated_at) "
                "VALUES ('acme', 'operation_in_progress', :e, 1, :t, 1, :at, :at)"
            ),
            {"e": EXEC, "at": now, "t": True},
        )
        conn.execute(
            sa.text(
                "INSERT INTO compute_state_operations (tenant_id, execution_id, attempt, operation, "
                "provider, status, started_at) VALUES ('acme', :e, 1, 'provision', 'ecs', 'in_progress', :at)"
            ),
            {"e": EXEC, "at": now},
        )
    engine.dispose()
    upgraded = SqlTenantStateStore(state_url)
    [op] = upgraded.operations("acme")
    assert (op.attempt, op.try_token, op.heartbeat_at) == (1, None, None)
    upgraded.heartbeat("acme", EXEC, by=TryRef(1, "resumed-after-upgrade:1:x"))
    nxt = upgraded.begin_operation("acme", EXEC, "provision", "ecs", 2, token="w:2:b")
    assert nxt.attempt == 2
    upgraded.close()


# -- staleness reads the heartbeat ----------------------------------------------------------------


def _age(state_url: str, **columns: timedelta) -> None:
    """Move the try's timestamps into the past (the database's clock cannot be set)."""
    engine = sa.create_engine(state_url)
    now = datetime.now(UTC)
    values = {name: (now - ago).replace(tzinfo=None) for name, ago in columns.items()}
    if engine.dialect.name == "postgresql":
        values = {name: now - ago for name, ago in columns.items()}
    with engine.begin() as conn:
        conn.execute(
            sa.text(f"UPDATE compute_state_operations SET {', '.join(f'{c} = :{c}' for c in values)}"), values
        )
    engine.dispose()


def _maintain(store: SqlTenantStateStore) -> TenantStatus:
    from airflow_compute_provider.recovery import Reconciler, RecoverySettings
    from airflow_compute_provider.recovery.settings import MIN_STALE_AFTER

    Reconciler(store).run(RecoverySettings(stale_after=MIN_STALE_AFTER))
    tenant = store.get_tenant("acme")
    assert tenant is not None
    return tenant.status


def test_a_try_that_started_long_ago_but_renews_its_heartbeat_is_not_stale(
    store: SqlTenantStateStore, state_url: str
) -> None:
    """A blocking wait of hours renews its heartbeat: the reconciler leaves its hold alone. The
    same try once its heartbeat stops is stale, and (no unit left) finished by the reconciler."""
    try_ = begin(store, "worker-a:11:aa")
    _age(state_url, started_at=timedelta(hours=3), heartbeat_at=timedelta(hours=3))
    store.heartbeat("acme", EXEC, by=try_)
    assert _maintain(store) is TenantStatus.OPERATION_IN_PROGRESS
    _age(state_url, heartbeat_at=timedelta(hours=1))
    assert _maintain(store) is not TenantStatus.OPERATION_IN_PROGRESS  # stale: the try was finished
    assert store.operations("acme")[0].finished_at is not None


def test_a_deferred_try_is_alive_until_its_deadline(store: SqlTenantStateStore, state_url: str) -> None:
    try_ = begin(store, "worker-a:11:aa")
    store.heartbeat("acme", EXEC, by=try_, live_until=store.now() + timedelta(hours=1))
    _age(state_url, started_at=timedelta(hours=3), heartbeat_at=timedelta(hours=3))
    assert _maintain(store) is TenantStatus.OPERATION_IN_PROGRESS
    _age(state_url, live_until=timedelta(hours=1))
    assert _maintain(store) is not TenantStatus.OPERATION_IN_PROGRESS  # stale: the try was finished
    assert store.operations("acme")[0].finished_at is not None
