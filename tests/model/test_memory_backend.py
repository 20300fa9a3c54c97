"""The in-memory backend honours the ``ComputeBackend`` contract the real hooks honour.

The same promises ``tests/integration/test_contract.py`` checks on moto and the Kubernetes API
server: a re-sent token returns the same unit, ``find`` returns every generation of an
execution, a lost answer is a refusal after the unit started, a vanished unit reads as such.
"""

from __future__ import annotations

import asyncio

import pytest

from airflow_compute_provider.errors import ComputeError, ComputeOperationError, ErrorCode
from airflow_compute_provider.hooks.base import (
    ComputeBackend,
    ExecutionRef,
    LaunchPlan,
    UnitLaunch,
    UnitPhase,
)
from airflow_compute_provider.lifecycle.reconcile import may_have_launched
from airflow_compute_provider.testing.memory import MemoryCloud, MemoryComputeBackend

EXECUTION = ExecutionRef("acme", "dag:run:task:-1")


def plan(*units: tuple[int, int]) -> LaunchPlan:
    return LaunchPlan(execution=EXECUTION, units=[UnitLaunch(i, g) for i, g in units], request={})


@pytest.fixture
def cloud() -> MemoryCloud:
    return MemoryCloud("contract")


def test_it_is_a_compute_backend_rebuilt_from_its_config(cloud: MemoryCloud) -> None:
    backend = MemoryComputeBackend(cloud)
    assert isinstance(backend, ComputeBackend)
    assert MemoryComputeBackend(**backend.backend_config()).cloud is cloud


def test_a_resent_token_returns_the_same_unit_never_a_second_one(cloud: MemoryCloud) -> None:
    backend = MemoryComputeBackend(cloud)
    first = backend.launch(plan((0, 1), (1, 1)))
    again = backend.launch(plan((0, 1), (1, 1)))
    assert [u.resource_id for u in again.launched] == [u.resource_id for u in first.launched]
    assert len(cloud.units) == 2
    assert [(u.index, u.generation) for u in backend.find(EXECUTION)] == [(0, 1), (1, 1)]


def test_find_returns_every_generation_of_the_execution_only(cloud: MemoryCloud) -> None:
    backend = MemoryComputeBackend(cloud)
    backend.launch(plan((0, 1)))
    backend.launch(plan((0, 2)))
    backend.launch(LaunchPlan(execution=ExecutionRef("other", "x"), units=[UnitLaunch(0, 1)], request={}))
    assert [(u.index, u.generation) for u in backend.find(EXECUTION)] == [(0, 1), (0, 2)]


def test_a_refusal_is_data_and_starts_nothing(cloud: MemoryCloud) -> None:
    refusal = ComputeError(code=ErrorCode.INSUFFICIENT_CAPACITY, message="RESOURCE:CPU")
    cloud.refuse_next(refusal)
    result = MemoryComputeBackend(cloud).launch(plan((0, 1), (1, 1)))
    assert [(ul.index, err.code) for ul, err in result.refused] == [(0, ErrorCode.INSUFFICIENT_CAPACITY)]
    assert [u.index for u in result.launched] == [1]
    assert len(cloud.units) == 1


def test_a_lost_answer_is_a_refusal_after_the_unit_started(cloud: MemoryCloud) -> None:
    cloud.lose_next_answer()
    backend = MemoryComputeBackend(cloud)
    result = backend.launch(plan((0, 1)))
    [(_, error)] = result.refused
    assert may_have_launched(error)
    [unit] = backend.find(EXECUTION)
    # the re-sent token finds it: no second unit
    assert backend.launch(plan((0, 1))).launched[0].resource_id == unit.resource_id


def test_describe_follows_the_units_fate_and_reports_a_vanished_one(cloud: MemoryCloud) -> None:
    backend = MemoryComputeBackend(cloud)
    a, b, c = backend.launch(plan((0, 1), (1, 1), (2, 1))).launched
    cloud.succeed(a.resource_id)
    cloud.fail(b.resource_id, ErrorCode.INFRASTRUCTURE_INTERRUPTED)
    cloud.vanish(c.resource_id)
    phases = [(s.phase, s.error.code if s.error else None) for s in backend.describe([a, b, c])]
    assert phases == [
        (UnitPhase.SUCCEEDED, None),
        (UnitPhase.FAILED, ErrorCode.INFRASTRUCTURE_INTERRUPTED),
        (UnitPhase.VANISHED, None),
    ]
    assert asyncio.run(backend.adescribe([a]))[0].phase is UnitPhase.SUCCEEDED


def test_stop_ends_live_units_and_returns_the_ones_it_could_not_stop(cloud: MemoryCloud) -> None:
    backend = MemoryComputeBackend(cloud)
    a, b = backend.launch(plan((0, 1), (1, 1))).launched
    cloud.refuse_next_stop()
    not_stopped = backend.stop([a, b], reason="rollback")
    assert [u.resource_id for u, _ in not_stopped] == [a.resource_id]
    assert [s.phase for s in backend.describe([a, b])] == [UnitPhase.PENDING, UnitPhase.FAILED]
    assert backend.describe([b])[0].error.code is ErrorCode.CANCELLED  # type: ignore[union-attr]


def test_a_whole_call_failure_leaves_as_compute_operation_error(cloud: MemoryCloud) -> None:
    cloud.fail_next_call("find")
    with pytest.raises(ComputeOperationError) as raised:
        MemoryComputeBackend(cloud).find(EXECUTION)
    assert raised.value.error.code is ErrorCode.PROVIDER_UNREACHABLE
