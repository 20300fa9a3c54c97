"""The lifecycle model's rules played by hand: the stories of issue 16, step by step.

Each drives ``LifecycleModel`` (the same rules and invariants hypothesis explores) through one
story, so the story is replayed on every CI run whatever the random search finds, and checks
every invariant after it (``check``): a violation raises ``Violation`` and fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_compute_provider.errors import ComputeOperationError, ErrorCode
from airflow_compute_provider.state.status import TenantStatus
from tests.model.harness import Process, model_time
from tests.model.lifecycle_model import GAPS, STALE_AFTER, LifecycleModel

LATER, STALE = GAPS[1], GAPS[2]


class Scenario(LifecycleModel):
    counted = False  # a story played by hand is no example of the random search


@pytest.fixture
def model() -> Iterator[LifecycleModel]:
    with model_time():
        machine = Scenario()
        machine.configure(count=1, wait_for="completion", on_partial_failure="rollback")
        yield machine
        machine.teardown()


def check(machine: LifecycleModel) -> None:
    machine.at_most_one_live_generation_per_unit()
    machine.tenant_is_where_the_newest_try_left_it()


def newest(machine: LifecycleModel) -> Process:
    return machine.processes[-1]


def settle_units(machine: LifecycleModel, fate: str) -> None:
    while any(u.live for u in machine.cloud.units.values()):
        machine.unit_changes(which=0, fate=fate)


def live_units(machine: LifecycleModel) -> list[str]:
    return [f"{u.index}g{u.generation}" for u in machine.cloud.units.values() if u.live]


def status(machine: LifecycleModel) -> tuple[TenantStatus, bool] | None:
    tenant = machine.store.get_tenant(machine.tenant)
    return (tenant.status, tenant.held) if tenant is not None else None


def code_of(process: Process) -> ErrorCode | None:
    assert process.result is not None
    kind, value = process.result
    return value.error.code if kind == "failed" and isinstance(value, ComputeOperationError) else None


def reason_of(process: Process) -> str | None:
    assert process.result is not None
    _kind, value = process.result
    return value.error.root_cause.reason if isinstance(value, ComputeOperationError) else None


def test_a_try_that_dies_after_its_intent_is_found_by_the_next_stale_reconciler_run(
    model: LifecycleModel,
) -> None:
    model.provider_fault(fault="lose_answer", skip=0)
    model.new_try(deferrable=False, will_retry=False)
    p = newest(model)
    model.drive(p, until="backend.launch")
    model.drive(p, calls=1)  # the unit starts; its answer is lost
    model.crash(which=0)
    assert live_units(model) == ["0g1"]
    model.reconciler_runs(gap=STALE)  # no try left: checks every live unit is in the ledger
    (row,) = model.store.ledger(model.tenant, model.execution.execution_id)
    assert row.resource_id is not None
    check(model)


def test_success_clear_timeout_clear_never_doubles_a_unit(model: LifecycleModel) -> None:
    """Issue 16, point 1: the second clear after a success adopts what the timed-out try left."""
    model.new_try(deferrable=False, will_retry=False)
    model.drive(newest(model), until="sleep")  # launched, polling
    settle_units(model, "succeeded")
    model.run_to_end(which=0)
    model.new_try(deferrable=False, will_retry=False)  # cleared after success: runs again
    model.run_to_end(which=0)  # times out, its unit left running
    assert code_of(model.processes[1]) is ErrorCode.OPERATION_TIMEOUT
    model.new_try(deferrable=False, will_retry=False)  # cleared again
    model.drive(newest(model), until="sleep")
    assert live_units(model) == ["0g2"]  # adopted, not doubled
    check(model)


def test_a_zombie_try_is_refused_and_changes_nothing(model: LifecycleModel) -> None:
    """Issue 16, point 4: try 1 still polls when try 2 began; its next write is refused."""
    model.new_try(deferrable=False, will_retry=False)
    zombie = newest(model)
    model.drive(zombie, until="sleep")  # launched, polling
    model.new_try(deferrable=False, will_retry=True)
    model.drive(newest(model), until="store.timeouts_so_far")  # try 2 began
    model.drive(zombie)  # checks that the zombie's steps change nothing in the store
    assert code_of(zombie) is ErrorCode.CONFLICT
    model.run_to_end(which=0)
    check(model)


def test_a_new_dag_run_of_the_execution_is_its_next_try_and_adopts(model: LifecycleModel) -> None:
    """Issue 16, point 7: Airflow's try number restarts at 1; the store numbers the try 2."""
    model.new_try(deferrable=False, will_retry=False)
    model.run_to_end(which=0)  # times out, unit left running
    model.new_dag_run(deferrable=False, will_retry=False)
    p = newest(model)
    assert (p.ti.run_id, p.ti.try_number) == ("run-2", 1)
    model.drive(p, until="sleep")
    assert live_units(model) == ["0g1"]  # adopted
    ops = model.store.operations(model.tenant)
    assert sorted((op.attempt, op.airflow_try_number) for op in ops) == [(1, 1), (2, 1)]
    check(model)


def test_a_double_run_of_one_try_launches_once(model: LifecycleModel) -> None:
    """Issue 16, point 4: the same Airflow try in a second process takes it over; the first
    process, about to record its intent, is refused and launches nothing."""
    model.new_try(deferrable=False, will_retry=False)
    first = newest(model)
    model.drive(first, until="store.record_intent")
    model.same_try_again(deferrable=False, will_retry=False)
    second = newest(model)
    model.drive(second, until="sleep")
    model.drive(first)
    assert code_of(first) is ErrorCode.CONFLICT
    assert live_units(model) == ["0g1"]
    (op,) = model.store.operations(model.tenant)  # one try, taken over: attempt 1
    assert op.attempt == 1
    check(model)


def test_a_reconciler_run_keeps_a_deferred_tries_hold_until_its_deadline(model: LifecycleModel) -> None:
    """A deferred try writes no heartbeat; it is alive until its deadline (``live_until``)."""
    model.new_try(deferrable=True, will_retry=False)
    model.run_to_end(which=0)  # deferred
    assert model.triggers
    model.reconciler_runs(gap=LATER)  # within the deadline: the hold is kept (checked)
    assert status(model) == (TenantStatus.OPERATION_IN_PROGRESS, True)
    model.trigger_fires(which=0, kind="timeout", will_retry=False)
    model.run_to_end(which=0)
    assert code_of(newest(model)) is ErrorCode.OPERATION_TIMEOUT
    check(model)


def test_a_stale_hold_is_released_once_its_units_ended(model: LifecycleModel) -> None:
    """A try dies while waiting; its unit succeeds; a maintenance run past ``stale_after``
    finishes the try as it would have, and frees the tenant."""
    model.new_try(deferrable=False, will_retry=False)
    model.drive(newest(model), until="sleep")
    model.crash(which=0)
    settle_units(model, "succeeded")
    model.reconciler_runs(gap=LATER)  # not stale yet: kept
    assert status(model) == (TenantStatus.OPERATION_IN_PROGRESS, True)
    model.reconciler_runs(gap=STALE_AFTER.total_seconds())
    assert status(model) == (TenantStatus.READY, False)
    check(model)


def test_after_a_clear_a_retry_relaunches_only_the_failed_unit(model: LifecycleModel) -> None:
    """Success; a clear runs both units again; unit 1 is interrupted (a retriable partial
    failure, after unit 0 succeeded); the retry relaunches unit 1 only: unit 0's success is
    adopted, although an earlier try (not the newest) succeeded."""
    model.configure(count=2, wait_for="completion", on_partial_failure="retry_failed")
    model.new_try(deferrable=False, will_retry=False)
    model.drive(newest(model), until="sleep")
    settle_units(model, "succeeded")
    model.run_to_end(which=0)
    model.new_try(deferrable=False, will_retry=True)  # cleared after success: both run again
    model.drive(newest(model), until="sleep")
    model.unit_changes(which=1, fate="interrupted")
    model.unit_changes(which=0, fate="succeeded")
    model.run_to_end(which=0)
    assert code_of(newest(model)) is ErrorCode.PARTIAL_FAILURE
    model.new_try(deferrable=False, will_retry=False)  # the retry
    model.drive(newest(model), until="sleep")  # checks no succeeded unit is launched again
    assert live_units(model) == ["1g3"]
    check(model)


def test_a_deferred_try_alive_until_its_deadline_keeps_its_hold_after_its_units_ended(
    model: LifecycleModel,
) -> None:
    """Deferred with a 10-minute deadline, its units done, the trigger not fired yet: a
    maintenance run long after the try's start but within its deadline leaves the hold alone."""
    model.configure(count=1, wait_for="completion", on_partial_failure="rollback", timeout=600)
    model.new_try(deferrable=True, will_retry=False)
    model.run_to_end(which=0)  # deferred until start + 10 min
    settle_units(model, "succeeded")
    model.reconciler_runs(gap=STALE)  # started > stale_after ago, alive until its deadline
    model.reconciler_runs(gap=STALE)
    assert status(model) == (TenantStatus.OPERATION_IN_PROGRESS, True)
    model.trigger_fires(which=0, kind="settled", will_retry=False)
    model.run_to_end(which=0)
    assert newest(model).result is not None
    assert newest(model).result[0] == "succeeded"
    check(model)


def test_a_clears_intent_is_resent_by_the_next_try_not_dropped(model: LifecycleModel) -> None:
    """Found by the deep run (a model bug, not the product's): try 2 succeeded; a new DAG run
    (try 3, a fresh start) records its intent for generation 2 and dies before sending it; the
    next try resends that intent: it is the re-run the clear asked for, not a duplicate."""
    model.new_try(deferrable=False, will_retry=False)
    model.run_to_end(which=0)  # times out, 0g1 left running
    model.new_dag_run(deferrable=False, will_retry=False)
    model.every_unit(fate="succeeded")
    model.run_to_end(which=0)  # adopts 0g1: succeeded
    model.new_dag_run(deferrable=False, will_retry=False)
    model.drive(newest(model), until="backend.launch")
    model.crash(which=0)  # the intent of 0g2 is in the ledger, never sent
    model.new_dag_run(deferrable=False, will_retry=False)
    model.drive(newest(model), until="sleep")
    assert live_units(model) == ["0g2"]
    check(model)


def test_a_launch_sent_after_the_reconciler_gave_up_on_its_try_is_recorded_and_cleaned(
    model: LifecycleModel,
) -> None:
    """Found by the deep run: a clear's try writes its intents, then stalls in its launch call
    (no heartbeat) past ``stale_after``; the reconciler finds nothing, records the intents as
    never launched and ends the try; then the launch goes out. Its units' ids must still reach
    the ledger (as pending cleanup), and the next reconciler run stops them. Without that the
    late report was dropped as a stale one and the units ran on, unknown to the ledger."""
    model.configure(count=2, wait_for="completion", on_partial_failure="rollback", timeout=60)
    model.new_try(deferrable=False, will_retry=False)
    model.new_try(deferrable=False, will_retry=False)
    model.run_to_end(which=0)
    model.every_unit(fate="succeeded")
    model.run_to_end(which=0)
    model.new_try(deferrable=False, will_retry=False)  # a clear after success: a fresh start
    model.advance(calls=12, which=0)  # its intents written, the launch not yet sent
    model.reconciler_runs(gap=150.0)
    model.run_to_end(which=0)  # the launch goes out after all
    assert reason_of(newest(model)) == "try_ended"  # its ended operation refused its outcome
    model.reconciler_runs(gap=0.0)  # raises Violation if a live unit is unknown to the ledger
    assert live_units(model) == []


def test_a_fresh_start_whose_launch_was_refused_is_retried_as_the_next_generation(
    model: LifecycleModel,
) -> None:
    """Found by the deep run (a false alarm of the model's own check): after a clear whose new
    generation was refused, the next try launches the generation after it; the unit's newest
    generation is the refused one in the ledger, not the succeeded one before it."""
    model.new_try(deferrable=False, will_retry=False)
    model.run_to_end(which=0)
    model.provider_fault(fault="refuse_capacity", skip=0)
    model.every_unit(fate="succeeded")
    model.new_try(deferrable=False, will_retry=False)
    model.new_try(deferrable=False, will_retry=False)
    model.run_to_end(which=0)
    model.run_to_end(which=0)
    model.new_try(deferrable=False, will_retry=False)
    model.run_to_end(which=0)  # raises Violation if the check misreads the newest generation
    check(model)


def test_a_zombies_launch_after_the_newer_try_launched_does_not_add_a_generation(
    model: LifecycleModel,
) -> None:
    """Found by the deep run: try 1 writes its intents and stalls before its launch call; try 2
    begins (try 1 is a zombie now); a platform operator releases the tenant and a reconciler run
    closes try 1's intents as never launched; try 2 launches generation 2 and times out; then try
    1's stalled launch goes out. Generation 1 must not run beside generation 2."""
    model.configure(count=2, wait_for="completion", on_partial_failure="rollback", timeout=60)
    model.new_try(deferrable=False, will_retry=False)
    zombie = newest(model)
    model.drive(zombie, until="backend.launch")  # its intents written, the launch not sent
    model.new_try(deferrable=False, will_retry=False)
    model.operator_releases()
    model.reconciler_runs(gap=0.0)
    model.run_to_end(which=0)  # try 2 re-sends generation 1 and times out
    model.drive(zombie)  # the same token: raises Violation if a second generation goes live
    assert live_units(model) == ["0g1", "1g1"]
    check(model)


def test_a_refused_resend_of_a_zombies_intent_keeps_its_token(model: LifecycleModel) -> None:
    """Found by the deep run: try 1 writes its intent and stalls before its launch call; two new
    DAG runs of the execution begin; the first to run re-sends try 1's intent and is refused
    (capacity); the other must re-send it again with the same token, not launch generation 2,
    because try 1's stalled request, sent last, would start generation 1 beside it (a refused
    create leaves a Kubernetes pod name, or the memory provider's token, free)."""
    model.configure(count=1, wait_for="completion", on_partial_failure="rollback", timeout=60)
    model.provider_fault(fault="refuse_capacity", skip=0)
    model.new_try(deferrable=False, will_retry=False)
    zombie = newest(model)
    model.drive(zombie, until="backend.launch")  # its intent written, the launch not sent
    model.new_dag_run(deferrable=False, will_retry=False)
    model.new_dag_run(deferrable=False, will_retry=False)
    model.run_to_end(which=0)  # re-sends generation 1: refused
    model.run_to_end(which=0)  # re-sends generation 1 again: launched, times out running
    model.drive(zombie)  # the same token: raises Violation if a second generation goes live
    assert live_units(model) == ["0g1"]
    check(model)


def test_a_resend_refused_because_a_stranger_holds_the_token_goes_on_as_the_next_generation(
    model: LifecycleModel,
) -> None:
    """Found by the distributed soak (CI, stop 25): a foreign pod holds the name of a unit whose
    intent a killed try left behind. The next try re-sends it and is refused; re-sending it
    again would be refused for ever (each try failing until the retries ran out), so the try
    after that launches generation 2. The stalled first sender's late request is refused too,
    for the stranger still holds the token: one live generation."""
    model.configure(count=1, wait_for="completion", on_partial_failure="rollback", timeout=60)
    model.provider_fault(fault="hold_token", skip=0)
    model.new_try(deferrable=False, will_retry=False)
    zombie = newest(model)
    model.drive(zombie, until="backend.launch")  # its intent written, the launch not sent
    model.new_dag_run(deferrable=False, will_retry=False)
    later = newest(model)
    model.new_dag_run(deferrable=False, will_retry=False)
    model.run_to_end(which=0)  # re-sends generation 1: refused, the token is held
    model.drive(later, until="sleep")
    assert live_units(model) == ["0g2"]
    model.drive(zombie)  # the token's late request: refused, the stranger holds it
    assert live_units(model) == ["0g2"]
    check(model)


def test_a_unit_started_by_a_launch_that_outlived_its_lookup_is_adopted_and_followed(
    model: LifecycleModel,
) -> None:
    """A try stalls in its launch call; a platform operator releases the tenant and a reconciler
    run records the intent as never launched; then the launch goes out and the try dies. The
    next try finds the unit and adopts it, and the ledger row follows it again (running, then
    succeeded) rather than handing the unit it waits on to cleanup."""
    model.new_try(deferrable=False, will_retry=False)
    stalled = newest(model)
    model.drive(stalled, until="backend.launch")
    model.operator_releases()
    model.reconciler_runs(gap=0.0)
    (row,) = model.store.ledger(model.tenant, model.execution.execution_id)
    assert row.never_launched
    model.drive(stalled, calls=1)  # the launch goes out after all
    model.crash(which=0)
    model.new_try(deferrable=False, will_retry=False)
    model.drive(newest(model), until="sleep")  # adopted, waiting
    assert live_units(model) == ["0g1"]
    settle_units(model, "succeeded")
    model.run_to_end(which=0)
    assert newest(model).result is not None
    assert newest(model).result[0] == "succeeded"
    (row,) = model.store.ledger(model.tenant, model.execution.execution_id)
    assert (row.generation, row.status.value, bool(row.resource_id)) == (1, "succeeded", True)
    check(model)


def test_a_deferral_timeout_resume_of_an_older_try_writes_nothing(model: LifecycleModel) -> None:
    """Found by the deep run: try 2 defers; a new DAG run's try begins; then Airflow resumes try
    2 with ``TaskDeferralTimeout``. The resume reads what it watched from the ledger and must
    write as try 2 (refused now), not as the execution's newest try."""
    model.new_try(deferrable=False, will_retry=False)
    model.new_try(deferrable=True, will_retry=False)
    model.new_dag_run(deferrable=False, will_retry=False)
    deferred = model.processes[1]
    model.drive(deferred)
    assert deferred.result is not None
    assert deferred.result[0] == "deferred"
    model.every_unit(fate="succeeded")
    model.task_deferral_timeout(which=0, will_retry=False)
    model.drive(model.processes[2], calls=2)  # the new DAG run's try begins
    model.run_to_end(which=0)  # the resume: raises Violation if it changes the store
    assert reason_of(newest(model)) == "superseded_try"
    check(model)


def test_a_deferral_timeout_resume_after_a_double_run_took_the_try_over_writes_nothing(
    model: LifecycleModel,
) -> None:
    """Found by the deep run: try 1 defers; a second process runs the same try (it takes it over);
    then Airflow resumes the first process's deferral with ``TaskDeferralTimeout``. The resume
    must not write as the process that took the try over."""
    model.new_try(deferrable=True, will_retry=False)
    first = newest(model)
    model.same_try_again(deferrable=False, will_retry=False)
    model.drive(first)  # deferred
    model.task_deferral_timeout(which=0, will_retry=False)
    model.drive(model.processes[1], calls=2)  # the second process takes the try over
    model.run_to_end(which=0)  # the resume: raises Violation if it changes the store
    assert reason_of(newest(model)) == "superseded_try"
    check(model)
