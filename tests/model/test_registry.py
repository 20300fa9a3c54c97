"""A provider plugs in through the registry alone (``airflow_compute_provider/registry.py``).

The in-memory provider (``testing/memory.py``) is declared with one ``ComputeProvider`` entry
(``memory.ENTRY``) and nothing else: no operator, trigger or reconciler code names it. Then the
lifecycle's launch, the trigger (rebuilt from its serialized kwargs, as the triggerer does) and
the reconciler (its default backend factory, from a ledger row) all reach its units.
The built-in providers' entries are checked against what ``get_provider_info`` tells Airflow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from airflow_compute_provider import registry
from airflow_compute_provider.errors import ComputeConfigError
from airflow_compute_provider.lifecycle.launch import reconcile_and_launch
from airflow_compute_provider.lifecycle.ledger import LaunchTimer
from airflow_compute_provider.recovery import Reconciler, RecoverySettings
from airflow_compute_provider.registry import ComputeProvider
from airflow_compute_provider.state import ResourceStatus, SqlTenantStateStore
from airflow_compute_provider.testing.memory import PROVIDER, MemoryCloud, MemoryComputeBackend, registered
from airflow_compute_provider.triggers.status import ComputeStatusTrigger
from tests.model.support import EXECUTION_ID, TENANT, a_try


@pytest.fixture
def memory_provider() -> Iterator[ComputeProvider]:
    with registered() as entry:
        yield entry


def _first_event(trigger: ComputeStatusTrigger) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger yielded nothing")

    return asyncio.run(asyncio.wait_for(first(), timeout=30))


def test_the_memory_provider_runs_the_lifecycle_the_trigger_and_the_reconciler(
    memory_provider: ComputeProvider, store: SqlTenantStateStore, cloud: MemoryCloud
) -> None:
    # the lifecycle: launch on a backend the registry built from a plain config
    backend = registry.backend_from_config(PROVIDER, {"cloud": cloud.name})
    assert isinstance(backend, MemoryComputeBackend)
    t = a_try(count=2)
    store.begin_operation(TENANT, EXECUTION_ID, "provision", PROVIDER, t.attempt)
    result = reconcile_and_launch(store, t, backend, {}, conn_id=None, timer=LaunchTimer())
    assert len(result.launched) == 2

    # the trigger: serialized and rebuilt, it reads the units through the registry's backend
    classpath, kwargs = ComputeStatusTrigger(
        provider=PROVIDER,
        backend_config=backend.backend_config(),
        units=[u.to_dict() for u in result.launched],
        deadline=(datetime.now(UTC) + timedelta(hours=1)).isoformat(),
        poll_interval=0.05,
    ).serialize()
    assert classpath.endswith("ComputeStatusTrigger")
    for unit in result.launched:
        cloud.succeed(unit.resource_id)
    event = _first_event(ComputeStatusTrigger(**kwargs))
    assert event["kind"] == "settled"
    assert {s["phase"] for s in event["statuses"]} == {"succeeded"}

    # the reconciler: a unit whose launch answer was lost is found from its ledger row, through
    # the default backend factory (the registry's recovery_config and hook)
    lost = a_try(count=1, tenant_id="beta")
    store.begin_operation("beta", EXECUTION_ID, "provision", PROVIDER, lost.attempt)
    cloud.lose_next_answer()
    cloud.fail_next_call("find", skip=1)  # the try's own look for its refused unit fails too
    reconcile_and_launch(store, lost, backend, {}, conn_id=None, timer=LaunchTimer())
    [row] = store.ledger("beta", EXECUTION_ID)
    assert row.status is ResourceStatus.INTENDED
    Reconciler(store, clock=lambda: datetime.now(UTC) + timedelta(hours=2)).run(
        RecoverySettings(provider=PROVIDER)
    )
    [row] = store.ledger("beta", EXECUTION_ID)
    assert row.status is ResourceStatus.LAUNCHED
    assert row.resource_id in cloud.units


def test_a_provider_nobody_registered_is_a_configuration_error_naming_the_provider() -> None:
    assert PROVIDER not in registry.names()
    with pytest.raises(ComputeConfigError) as refused:
        registry.backend_from_config(PROVIDER, {})
    assert refused.value.argument == "provider"
    with pytest.raises(ComputeConfigError):
        RecoverySettings(provider=PROVIDER)


def test_a_ledger_row_without_its_required_locator_is_refused(memory_provider: ComputeProvider) -> None:
    with pytest.raises(ComputeConfigError, match="names no cloud"):
        memory_provider.recovery_config(None, {"namespace": "default"})
    assert memory_provider.recovery_config(None, {"cloud": "c"}) == {"cloud": "c", "namespace": None}


def test_get_provider_info_names_what_the_registry_declares() -> None:
    from airflow_compute_provider.get_provider_info import get_provider_info

    info = get_provider_info()
    hooks = {module for entry in info["hooks"] for module in entry["python-modules"]}
    assert hooks == {p.hook.rpartition(".")[0] for p in registry.providers()}
    assert set(info["extra-links"]) == {link for p in registry.providers() for link in p.extra_links}
    for provider in registry.providers():
        assert provider.hook_class().provider == provider.name  # type: ignore[attr-defined]
