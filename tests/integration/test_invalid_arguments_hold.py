"""Requirement 2.2 read literally, end to end (``dag.test()``): an invalid argument that our own
validation catches at the start of ``execute`` (a templated value, rendered) holds the tenant for
investigation with the ComputeConfigError, creating the tenant when the store never saw it, and
still makes no provider request. The one exception: an invalid tenant id, which names no tenant.
(The ECS case of ``count`` is ``test_ecs_operator.py``'s; Kubernetes and the exceptions are here.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_compute_provider.state.config import open_state_store
from airflow_compute_provider.state.status import TenantStatus
from tests.harness.kubecluster import KubeCluster
from tests.harness.proxy import FaultProxy
from tests.integration.ecs_dags import ecs_dag
from tests.integration.kubernetes_dags import KubeEnv

pytestmark = pytest.mark.airflow


@pytest.mark.kube
def test_kubernetes_an_invalid_namespace_holds_the_tenant_before_any_call(
    airflow_env: Any,
    kube_cluster: KubeCluster,
    kube_namespace: str,
    kube_core: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    fault_proxy: Any,
) -> None:
    kube_env = KubeEnv(kube_cluster, kube_namespace, kube_core, monkeypatch, tmp_path)
    proxy: FaultProxy = fault_proxy(kube_cluster.server)
    kube_env.route_through(proxy.url)
    source = kube_env.dag(
        "kube_bad_namespace_holds", tenant_id="k-bad-ns-held", namespace="{{ 'Not_A_Namespace' }}", retries=2
    )

    run = airflow_env.run_dag(source, "kube_bad_namespace_holds")

    assert run.state() == "failed"
    assert run.try_numbers()["provision"] == 1
    error = run.xcom("provision", key="compute_error")
    assert (error["code"], error["classification"]) == ("INVALID_CONFIGURATION", "non_retriable")
    assert proxy.counts.total == 0
    tenant = open_state_store().get_tenant("k-bad-ns-held")
    assert tenant is not None
    assert tenant.status is TenantStatus.NEEDS_INVESTIGATION
    assert tenant.note is not None
    assert "'namespace'" in tenant.note


def test_an_invalid_argument_of_a_known_tenant_holds_it_without_touching_its_history(
    airflow_env: Any, ecs_env: Any, fault_proxy: Any
) -> None:
    proxy: FaultProxy = fault_proxy(ecs_env.moto_url)
    ecs_env.route_through(proxy.url)
    store = open_state_store()
    store.begin_operation("known-bad", "earlier", "provision", "ecs", 1)
    store.finish_operation("known-bad", "earlier", None, will_retry=False)
    operations = store.operations("known-bad")

    source = ecs_dag(
        "ecs_bad_timeout_holds",
        network_configuration=ecs_env.network_configuration,
        tenant_id="known-bad",
        operation="{{ '' }}",
    )
    run = airflow_env.run_dag(source, "ecs_bad_timeout_holds")

    assert run.state() == "failed"
    assert run.xcom("provision", key="compute_error")["code"] == "INVALID_CONFIGURATION"
    assert proxy.counts.total == 0
    tenant = store.get_tenant("known-bad")
    assert tenant is not None
    assert (tenant.status, tenant.held) == (TenantStatus.NEEDS_INVESTIGATION, False)
    assert "'operation'" in (tenant.note or "")
    assert store.operations("known-bad") == operations, "no try began"


def test_an_invalid_tenant_id_holds_no_tenant(airflow_env: Any, ecs_env: Any, fault_proxy: Any) -> None:
    proxy: FaultProxy = fault_proxy(ecs_env.moto_url)
    ecs_env.route_through(proxy.url)
    before = {t.tenant_id for t in open_state_store().list_tenants()}
    source = ecs_dag(
        "ecs_bad_tenant", network_configuration=ecs_env.network_configuration, tenant_id="{{ 'Bad_Tenant' }}"
    )

    run = airflow_env.run_dag(source, "ecs_bad_tenant")

    assert run.state() == "failed"
    error = run.xcom("provision", key="compute_error")
    assert (error["code"], error["root_cause"]["reason"]) == ("INVALID_CONFIGURATION", "tenant_id")
    assert proxy.counts.total == 0
    assert {t.tenant_id for t in open_state_store().list_tenants()} == before
