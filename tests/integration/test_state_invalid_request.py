"""``hold_invalid_request``: requirement 2.2 for a try our own validation refused, on SQLite and on
a real PostgreSQL server. The tenant is held for investigation with the configuration error, and
created for it when the store never saw it; a try in progress is never overridden."""

from __future__ import annotations

import pytest

from airflow_compute_provider.errors import ComputeConfigError, ErrorCode
from airflow_compute_provider.state import (
    IllegalTransitionError,
    SqlTenantStateStore,
    TenantEvent,
    TenantStatus,
)
from tests.unit.state.support import EXEC, OTHER_EXEC, error, snapshot, state_url_fixture, store_fixture

state_url = state_url_fixture()
store = store_fixture()

INVALID = ComputeConfigError("must be greater than or equal to 1 (got 0)", argument="count").error


def test_a_tenant_the_store_never_saw_is_created_held(store: SqlTenantStateStore) -> None:
    held = store.hold_invalid_request("acme", INVALID, execution_id=EXEC, attempt=1)

    assert (held.status, held.held, held.execution_id, held.attempt) == (
        TenantStatus.NEEDS_INVESTIGATION,
        False,
        EXEC,
        1,
    )
    assert held.note == f"INVALID_CONFIGURATION: {INVALID.message}"
    assert "'count'" in (held.note or "")
    (move,) = store.transitions("acme")
    assert (move.event, move.from_status, move.to_status, move.execution_id) == (
        TenantEvent.FINISH,
        TenantStatus.READY,
        TenantStatus.NEEDS_INVESTIGATION,
        EXEC,
    )
    assert store.operations("acme") == [], "no try began"
    # held: every try is refused until someone releases it
    with pytest.raises(Exception, match="held for investigation"):
        store.begin_operation("acme", OTHER_EXEC, "provision", "ecs", 1)


@pytest.mark.parametrize("will_retry", [False, True], ids=["ready", "retry-pending"])
def test_a_free_or_waiting_tenant_is_held(store: SqlTenantStateStore, will_retry: bool) -> None:
    store.begin_operation("acme", EXEC, "provision", "ecs", 1)
    outcome = error(ErrorCode.PROVIDER_THROTTLED) if will_retry else None
    before = store.finish_operation("acme", EXEC, outcome, will_retry=will_retry)

    held = store.hold_invalid_request("acme", INVALID, execution_id=OTHER_EXEC, attempt=1)

    assert held.status is TenantStatus.NEEDS_INVESTIGATION
    assert (held.execution_id, held.held, held.version) == (OTHER_EXEC, False, before.version + 1)
    assert store.transitions("acme")[0].from_status is before.status


def test_without_a_valid_execution_id_the_tenant_keeps_the_last_one(store: SqlTenantStateStore) -> None:
    store.begin_operation("acme", EXEC, "provision", "ecs", 1)
    store.finish_operation("acme", EXEC, None, will_retry=False)

    held = store.hold_invalid_request("acme", INVALID)

    assert (held.status, held.execution_id, held.attempt) == (TenantStatus.NEEDS_INVESTIGATION, EXEC, 1)


def test_a_tenant_already_held_is_left_as_it_is(store: SqlTenantStateStore, state_url: str) -> None:
    store.hold_invalid_request("acme", INVALID, execution_id=EXEC, attempt=1)
    before = snapshot(state_url)

    again = store.hold_invalid_request("acme", INVALID, execution_id=OTHER_EXEC, attempt=2)

    assert (again.status, again.execution_id) == (TenantStatus.NEEDS_INVESTIGATION, EXEC)
    assert snapshot(state_url) == before


def test_a_try_in_progress_is_never_overridden(store: SqlTenantStateStore, state_url: str) -> None:
    store.begin_operation("acme", EXEC, "provision", "ecs", 1)
    before = snapshot(state_url)

    with pytest.raises(IllegalTransitionError, match="operation_in_progress"):
        store.hold_invalid_request("acme", INVALID, execution_id=OTHER_EXEC, attempt=1)

    assert snapshot(state_url) == before


@pytest.mark.parametrize(
    ("arguments", "argument"),
    [
        ({"tenant_id": "Not A Tenant"}, "tenant_id"),
        ({"execution_id": ""}, "execution_id"),
        ({"attempt": 0}, "attempt"),
        ({"error": "INVALID_CONFIGURATION"}, "error"),
    ],
)
def test_its_own_arguments_are_validated_first(
    store: SqlTenantStateStore, state_url: str, arguments: dict[str, object], argument: str
) -> None:
    before = snapshot(state_url)
    call: dict[str, object] = {"tenant_id": "acme", "error": INVALID, **arguments}
    tenant_id, invalid = call.pop("tenant_id"), call.pop("error")

    with pytest.raises(ComputeConfigError) as refused:
        store.hold_invalid_request(tenant_id, invalid, **call)  # type: ignore[arg-type]

    assert refused.value.argument == argument
    assert snapshot(state_url) == before
