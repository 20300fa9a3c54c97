"""The lifecycle model's rules played by hand: the scenarios issue 16 names, step by step.

Each drives ``LifecycleModel`` (the same rules and invariants hypothesis explores) through one
story, so the story is replayed on every CI run whatever the random search finds. A violation
whose fix has not landed yet (``MODEL_EXPECTS``) is recorded as known rather than raised: the
test asserts it was seen either way, which is the evidence for the fix to remove.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.model.harness import model_time
from tests.model.lifecycle_model import LifecycleModel, Violation


@pytest.fixture
def model(tmp_path: Path) -> Iterator[LifecycleModel]:
    LifecycleModel.store_url = f"sqlite:///{tmp_path / 'model.db'}"
    LifecycleModel._store = None
    with model_time():
        machine = LifecycleModel()
        yield machine
        machine.teardown()
        if LifecycleModel._store is not None:
            LifecycleModel._store.close()
            LifecycleModel._store = None


def check(machine: LifecycleModel) -> set[str]:
    """Every invariant now; the names of the violations seen (raised or known)."""
    seen = set(machine.reported)
    for invariant in (
        machine.at_most_one_live_generation_per_unit,
        machine.tenant_is_where_the_newest_try_left_it,
    ):
        try:
            invariant()
        except Violation as exc:
            seen.add(str(exc).split(":")[0])
    return seen | machine.reported


def settle_units(machine: LifecycleModel, fate: str) -> None:
    for _ in range(len(machine.cloud.units)):
        if any(u.live for u in machine.cloud.units.values()):
            machine.unit_changes(which=0, fate=fate)


def test_a_try_that_dies_after_its_intent_is_found_by_the_next_stale_reconciler_run(
    model: LifecycleModel,
) -> None:
    model.configure(count=1, wait_for="completion", on_partial_failure="rollback")
    model.provider_fault(fault="lose_answer", skip=0)
    model.new_try(deferrable=False, will_retry=False)
    # begin ... record_intent, then the launch itself: the unit starts, its answer is lost
    model.advance(which=0, calls=5)
    model.advance(which=0, calls=5)
    assert model.processes[0].at == "backend.find"  # about to look for the lost unit
    model.crash(which=0)
    assert any(u.live for u in model.cloud.units.values())
    model.reconciler_runs(stale=True)  # checks every live unit is in the ledger
    assert "live_unit_unknown_to_the_ledger" not in check(model)


def test_success_clear_timeout_clear_never_doubles_a_unit(model: LifecycleModel) -> None:
    """Issue 16, point 1: the second clear after a success must adopt what the timed-out try left."""
    model.configure(count=1, wait_for="completion", on_partial_failure="rollback")
    model.new_try(deferrable=False, will_retry=False)
    model.advance(which=0, calls=6)
    model.advance(which=0, calls=6)  # launched, polling
    settle_units(model, "succeeded")
    model.run_to_end(which=0)
    model.new_try(deferrable=False, will_retry=False)  # cleared after success: runs again
    model.run_to_end(which=0)  # times out, its unit left running
    model.new_try(deferrable=False, will_retry=False)  # cleared again
    with contextlib.suppress(Violation):
        model.advance(which=0, calls=6)
        model.advance(which=0, calls=6)  # past its launch
    assert "two_live_generations" in check(model)


def test_a_zombie_try_writes_after_a_newer_try_began(model: LifecycleModel) -> None:
    """Issue 16, point 4: try 1 still polls when try 2 began; its timeout lands on try 2's row."""
    model.configure(count=1, wait_for="completion", on_partial_failure="rollback")
    model.new_try(deferrable=False, will_retry=False)
    model.advance(which=0, calls=8)  # launched, polling
    model.new_try(deferrable=False, will_retry=True)
    model.advance(which=1, calls=1)
    model.advance(which=1, calls=1)  # try 2 began
    with contextlib.suppress(Violation):
        model.run_to_end(which=0)  # the zombie times out and records it
    assert "a_zombie_wrote" in check(model)
