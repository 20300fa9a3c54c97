"""Races and crashes: real threads, real processes and a real SIGKILL, on SQLite and PostgreSQL.

- N workers race ``begin_operation`` on one tenant with different execution ids: exactly
  one wins, the others get CONFLICT, and no row is lost or duplicated
- workers that keep beginning and finishing on one tenant lose no update
- the reconciler holding a tenant for investigation while a new try begins on it: one wins
- a process killed inside a transition (held open right before COMMIT through the store's
  test-only ``before_commit`` hook) leaves the previous state, and the store keeps working
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections import Counter
from typing import Any

import pytest

from airflow_compute_provider.errors import ComputeOperationError, ErrorCode
from airflow_compute_provider.state import (
    IllegalTransitionError,
    OperationStatus,
    ResourceStatus,
    SqlTenantStateStore,
    TenantEvent,
    TenantStatus,
)
from tests.unit.state import support
from tests.unit.state.support import EXEC, OTHER_EXEC, snapshot, state_url_fixture, store_fixture

state_url = state_url_fixture()
store = store_fixture()

RACERS = 8


def _forkserver() -> Any:
    # forkserver: children fork from a clean server process (no pytest threads, no open
    # connections) that has already imported the store, so each starts in milliseconds.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.unit.state.support"])
    return ctx


def _prepare(store: SqlTenantStateStore, first_sight: bool) -> None:
    if not first_sight:
        store.begin_operation("acme", "earlier", "provision", "ecs", 1)
        store.finish_operation("acme", "earlier", None, will_retry=False)


def _assert_one_winner(store: SqlTenantStateStore, results: dict[str, str], first_sight: bool) -> None:
    outcomes = Counter(results.values())
    assert outcomes == {"won": 1, ErrorCode.CONFLICT.value: RACERS - 1}, results
    [winner] = [execution for execution, outcome in results.items() if outcome == "won"]
    tenant = store.get_tenant("acme")
    assert tenant is not None
    assert (tenant.status, tenant.execution_id, tenant.held) == (
        TenantStatus.OPERATION_IN_PROGRESS,
        winner,
        True,
    )
    earlier = 0 if first_sight else 1
    ops = store.operations("acme")
    assert [o.execution_id for o in ops][: len(ops) - earlier] == [winner]
    begins = [m for m in store.transitions("acme") if m.event is TenantEvent.BEGIN]
    assert next(m.execution_id for m in begins) == winner
    assert len(begins) == 1 + earlier
    # exactly as many versions as moves: none lost, none doubled
    assert tenant.version == len(store.transitions("acme"))


@pytest.mark.parametrize("first_sight", [True, False], ids=["new-tenant", "ready-tenant"])
def test_threads_racing_begin_on_one_tenant_have_exactly_one_winner(
    store: SqlTenantStateStore, state_url: str, first_sight: bool
) -> None:
    _prepare(store, first_sight)
    barrier = threading.Barrier(RACERS)
    results: dict[str, str] = {}

    def race(execution_id: str) -> None:
        own = SqlTenantStateStore(state_url)  # a worker of its own: its own connections
        own.get_tenant("acme")
        barrier.wait()
        try:
            own.begin_operation("acme", execution_id, "provision", "ecs", 1)
            results[execution_id] = "won"
        except ComputeOperationError as exc:
            results[execution_id] = exc.error.code.value
        finally:
            own.close()

    threads = [threading.Thread(target=race, args=(f"run-{i}",)) for i in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    _assert_one_winner(store, results, first_sight)


@pytest.mark.parametrize("first_sight", [True, False], ids=["new-tenant", "ready-tenant"])
def test_processes_racing_begin_on_one_tenant_have_exactly_one_winner(
    store: SqlTenantStateStore, state_url: str, first_sight: bool
) -> None:
    _prepare(store, first_sight)
    ctx = _forkserver()
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=support.begin_in_child, args=(state_url, "acme", f"run-{i}", (ready, go, results)))
        for i in range(RACERS)
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=120)
    go.set()
    outcome = dict(results.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    _assert_one_winner(store, outcome, first_sight)


def test_workers_taking_turns_on_one_tenant_lose_no_update(
    store: SqlTenantStateStore, state_url: str
) -> None:
    workers, turns = 4, 5
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        own = SqlTenantStateStore(state_url)
        try:
            done = 0
            while done < turns:
                execution_id = f"w{worker}-t{done}"
                try:
                    own.begin_operation("acme", execution_id, "provision", "ecs", 1)
                except ComputeOperationError as exc:
                    if exc.error.code is not ErrorCode.CONFLICT:
                        raise
                    continue  # someone else holds it: try again
                own.finish_operation("acme", execution_id, None, will_retry=False)
                done += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert errors == []
    ops = store.operations("acme")
    assert len(ops) == workers * turns
    assert {o.status for o in ops} == {OperationStatus.SUCCEEDED}
    assert len({o.execution_id for o in ops}) == workers * turns
    moves = store.transitions("acme")
    assert len(moves) == 2 * workers * turns
    # Replaying the audit trail oldest first gives a strict alternation: never two holders.
    assert [m.event for m in reversed(moves)] == [TenantEvent.BEGIN, TenantEvent.FINISH] * workers * turns
    tenant = store.get_tenant("acme")
    assert tenant is not None
    assert (tenant.status, tenant.version) == (TenantStatus.READY, 2 * workers * turns)


def _race_hold_and_begin(state_url: str, tenant_id: str, version: int) -> dict[str, str]:
    """The reconciler's hold (on the version it read) and a new execution's begin, at once,
    each through a store of its own."""
    barrier = threading.Barrier(2)
    results: dict[str, str] = {}

    def hold() -> None:
        own = SqlTenantStateStore(state_url)
        own.get_tenant(tenant_id)
        barrier.wait()
        try:
            own.hold_for_investigation(
                tenant_id, EXEC, 1, support.error(ErrorCode.OUT_OF_MEMORY), "late", expected_version=version
            )
            results["hold"] = "won"
        except IllegalTransitionError:
            results["hold"] = "refused"
        finally:
            own.close()

    def new_try() -> None:
        own = SqlTenantStateStore(state_url)
        own.get_tenant(tenant_id)
        barrier.wait()
        try:
            own.begin_operation(tenant_id, OTHER_EXEC, "provision", "ecs", 1)
            results["begin"] = "won"
        except ComputeOperationError as exc:
            results["begin"] = exc.error.code.value
        finally:
            own.close()

    threads = [threading.Thread(target=hold), threading.Thread(target=new_try)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def test_a_hold_for_investigation_racing_a_new_try_never_overwrites_it(
    store: SqlTenantStateStore, state_url: str
) -> None:
    """The reconciler decided on the tenant as it read it; a new execution begins at the same
    moment. One wins, whole: held (and the new try refused), or taken (and the hold refused,
    nothing of it written)."""
    rounds = 6
    seen: Counter[str] = Counter()
    for n in range(rounds):
        tenant_id = f"acme-{n}"
        store.begin_operation(tenant_id, EXEC, "provision", "ecs", 1)
        timeout = support.error(ErrorCode.OPERATION_TIMEOUT)
        read = store.finish_operation(tenant_id, EXEC, timeout, will_retry=False)
        results = _race_hold_and_begin(state_url, tenant_id, read.version)
        tenant = store.get_tenant(tenant_id)
        assert tenant is not None
        timed_out = next(o for o in store.operations(tenant_id) if o.execution_id == EXEC)
        if results == {"hold": "won", "begin": ErrorCode.TENANT_STATE_CONFLICT.value}:
            assert (tenant.status, tenant.execution_id) == (TenantStatus.NEEDS_INVESTIGATION, EXEC)
            assert timed_out.eventual_status is OperationStatus.FAILED
            seen["held"] += 1
        else:
            assert results == {"hold": "refused", "begin": "won"}, results
            assert (tenant.status, tenant.execution_id) == (TenantStatus.OPERATION_IN_PROGRESS, OTHER_EXEC)
            assert timed_out.eventual_status is None  # the refused hold wrote nothing
            seen["taken"] += 1
        # begin, finish, then exactly one more move: never both
        assert tenant.version == len(store.transitions(tenant_id)) == 3
    assert sum(seen.values()) == rounds


def test_tenants_do_not_block_each_other(store: SqlTenantStateStore, state_url: str) -> None:
    names = [f"tenant-{i}" for i in range(RACERS)]
    results: dict[str, str] = {}
    barrier = threading.Barrier(len(names))

    def run(name: str) -> None:
        own = SqlTenantStateStore(state_url)
        barrier.wait()
        try:
            own.begin_operation(name, EXEC, "provision", "ecs", 1)  # the same execution id everywhere
            results[name] = "won"
        except ComputeOperationError as exc:
            results[name] = str(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=run, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert results == dict.fromkeys(names, "won")
    assert [t.tenant_id for t in store.list_tenants(status=TenantStatus.OPERATION_IN_PROGRESS)] == sorted(
        names
    )


@pytest.mark.parametrize("action", sorted(support.TRANSITIONS))
def test_a_process_killed_inside_a_transition_leaves_the_previous_state(
    store: SqlTenantStateStore, state_url: str, action: str
) -> None:
    support.prepare_for_crash(store, action)
    before = snapshot(state_url)
    ctx = _forkserver()
    paused = ctx.Event()
    child = ctx.Process(target=support.hold_in_child, args=(state_url, action, paused))
    child.start()
    try:
        assert paused.wait(120), f"the child never reached the commit of {action}"
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.join(60)
    assert child.exitcode == -signal.SIGKILL
    assert snapshot(state_url) == before
    # Nothing is left locked: the transition the child died in now goes through.
    support.TRANSITIONS[action](store)
    assert snapshot(state_url) != before
    if action == "record_resources":
        assert store.ledger("acme", EXEC)[0].status is ResourceStatus.RUNNING
    elif action == "begin_operation":
        tenant = store.get_tenant("acme")
        assert tenant is not None
        assert tenant.execution_id == OTHER_EXEC
    else:
        tenant = store.get_tenant("acme")
        assert tenant is not None
        assert tenant.status is not TenantStatus.OPERATION_IN_PROGRESS
