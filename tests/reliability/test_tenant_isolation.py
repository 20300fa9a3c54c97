"""Tenant isolation: hostile tenant ids are refused, colliding ids are kept apart, and a tenant
never finds, adopts, stops or cleans up another tenant's units.

Two tenants of each pair run the same operation with the same execution-id template, so their
execution ids are the same string. The decoy tenant's units run first and keep running; then
the other tenant, in the same DAG run, goes through what touches units of an execution:

    adopt     its launch answers are lost (the fault proxy drops them after the provider did
              the work), so it must find its own unit and adopt it: on ECS the same try looks
              for it at once, on Kubernetes (whose launch gives up at the first unit) the next
              try does
    rollback  a partial launch: its started units are stopped (ECS StopTask, pod deletes)
    cleanup   its rollback's stops are refused (on Kubernetes by RBAC: its connection's user
              may create pods but not delete them), the units are marked for cleanup, and a
              maintenance run (``recovery.Reconciler``) stops them afterwards (once that user
              may delete pods)

and every time the decoy's units, with the same execution id and the same unit indexes, are
right there. Afterwards the decoys still run, untouched, their ledger rows as they were, and
each tenant's results name only its own units. Execution ids that ECS tags cannot hold as they
are (``!`` becomes ``_``) are kept apart too, and ids that try label injection or path
traversal are refused wherever a tenant id is accepted.

moto plays ECS and the node simulator the kubelet; the rest is real. One test runs over both
providers (``side``): what differs between them (how each fault is made, what only one of them
shows) is a ``_Side``; the flow and the isolation checks are written once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings

from airflow_compute_provider.errors import ComputeConfigError
from airflow_compute_provider.hooks import ecs_tags
from airflow_compute_provider.hooks.base import exec_key
from airflow_compute_provider.hooks.kubernetes import KubernetesComputeHook
from airflow_compute_provider.hooks.kubernetes_pods import label_value
from airflow_compute_provider.operators.ecs import EcsComputeOperator
from airflow_compute_provider.operators.kubernetes import KubernetesComputeOperator
from airflow_compute_provider.recovery import Reconciler, RecoverySettings
from airflow_compute_provider.state.status import ResourceStatus, TenantStatus
from tests.harness.ecs import CLUSTER_NAME, TASK_FAMILY, aws_connection_json
from tests.harness.ecs_script import RUNS_FOREVER
from tests.harness.kube import kubernetes_connection_json, wait_for_quota
from tests.harness.nodesim import SCRIPT_ANNOTATION
from tests.harness.proxy import FaultProxy
from tests.harness.proxy_faults import Reset, ecs_error
from tests.reliability.audit import audit, ecs_inventory, kube_inventory
from tests.reliability.connections import proxied_kubeconfig
from tests.reliability.dags import Code, Task, compute_dag
from tests.reliability.inputs import TENANT_IDS
from tests.reliability.scenarios import QUOTA_REFUSAL
from tests.reliability.tally import TALLY

pytestmark = [pytest.mark.reliability, pytest.mark.airflow]

SCENARIOS = ("adopt", "rollback", "cleanup")
# two runs on one day: "{{ ds }}" renders the same for the decoys and the tenants they shadow
DECOYS_RUN = datetime(2026, 8, 1, 1, tzinfo=UTC)
TENANTS_RUN = datetime(2026, 8, 1, 2, tzinfo=UTC)
HOSTILE_TENANT_IDS = (
    "a,b=c",
    "a=b",
    "tenant in (a,b)",
    "a!=b",
    "../other",
    "a/../../b",
    "..",
    "a/b",
    "tenant\nx",
    "Tenant",
    "tenant_1",
    "tenant.1",
    "-tenant",
    "tenant-",
    "x" * 64,
    "",
)


def _pair(scenario: str, prefix: str) -> tuple[str, str]:
    """The tenant that runs ``scenario``, and its decoy."""
    return f"{prefix}-{scenario}", f"{prefix}-{scenario}-decoy"


def _execution_template(scenario: str) -> str:
    # the same template for both tenants of a pair: the same execution id once rendered
    return f"{{{{ ds }}}}:isolation:{scenario}"


def _alive_of(units: list[Any], tenant: str) -> list[tuple[int, str]]:
    return sorted((u.index, u.resource_id) for u in units if u.tenant_id == tenant and u.alive)


def _ledger(store: Any, tenant: str) -> list[tuple[Any, ...]]:
    return [
        (e.unit_index, e.generation, e.resource_id, e.status, e.updated_at)
        for e in store.list_resources(tenant_id=tenant)
    ]


# -- refused or kept distinct ------------------------------------------------------------------------


@pytest.mark.parametrize("tenant_id", HOSTILE_TENANT_IDS)
def test_hostile_tenant_ids_are_refused_wherever_a_tenant_id_is_taken(
    tenant_id: str, state_store: Any
) -> None:
    attempts: dict[str, Callable[[], object]] = {
        "ecs operator": lambda: EcsComputeOperator(
            task_id="t", tenant_id=tenant_id, operation="o", cluster="c", task_definition="td"
        ),
        "kubernetes operator": lambda: KubernetesComputeOperator(
            task_id="t", tenant_id=tenant_id, operation="o", namespace="ns", image="busybox"
        ),
        "state store": lambda: state_store.begin_operation(tenant_id, "e", "o", "ecs", 1),
        "maintenance scope": lambda: RecoverySettings(tenant_id=tenant_id),
    }
    for where, attempt in attempts.items():
        with pytest.raises(ComputeConfigError) as refused:
            attempt()
        assert refused.value.argument == "tenant_id", where
    TALLY.add(inputs=len(attempts))
    assert state_store.list_tenants() == []


@settings(max_examples=200, deadline=None, derandomize=True)
@given(first=TENANT_IDS.valid, second=TENANT_IDS.valid)
def test_distinct_tenant_ids_stay_distinct_in_every_provider_side_name(first: str, second: str) -> None:
    """A valid tenant id is its own label value and tag value, unchanged: two tenants never
    collide after normalization, and their executions' keys differ even for one execution id."""
    TALLY.add(inputs=2)
    for tenant in (first, second):
        assert label_value(tenant) == tenant
        assert ecs_tags.tag_value(tenant) == tenant
    if first != second:
        assert exec_key(first, "same:execution") != exec_key(second, "same:execution")


# -- both providers, one test --------------------------------------------------------------------------


class _Side:
    """What differs between the providers in the isolation test: each phase of it, in order."""

    provider: str
    prefix: str
    operator: str
    #: the tasks' states after the run, and the try the ``adopt`` task succeeded on
    states: dict[str, str]
    adopt_try: int

    def decoy_arguments(self, scenario: str) -> dict[str, Any]:
        raise NotImplementedError

    def arrange(self) -> list[Task]:
        """The faults each scenario meets, set up after the decoys ran; the tenants' tasks."""
        raise NotImplementedError

    def after_run(self) -> None:
        """Someone fixed what kept the cleanup from stopping its units."""

    def inventory(self) -> list[Any]:
        raise NotImplementedError

    def check(self, run: Any, units: list[Any]) -> None:
        """What only this provider shows."""


class _EcsSide(_Side):
    """moto plays ECS: the adopt try's RunTask answers are dropped by a fault proxy (the same
    try then finds its unit), the rollback's and cleanup's third unit refused for quota, the
    cleanup's StopTask refused (AccessDenied) until the maintenance run."""

    provider, prefix, operator = "ecs", "iso-e", "EcsComputeOperator"
    states = {
        "adopt": "success",
        "rollback": "failed",
        "cleanup": "failed",
        "norm_1": "success",
        "norm_2": "success",
    }
    adopt_try = 1

    def __init__(self, ecs_env: Any, fault_proxy: Callable[[str], FaultProxy], monkeypatch: Any) -> None:
        self.ecs_env, self.fault_proxy, self.monkeypatch = ecs_env, fault_proxy, monkeypatch
        self.common = {
            "operation": "provision",
            "cluster": CLUSTER_NAME,
            "task_definition": TASK_FAMILY,
            "launch_type": "FARGATE",
            "network_configuration": ecs_env.network_configuration,
            "poll_interval": 0.1,
            "retry_delay": Code("timedelta(0)"),
        }
        ecs_env.default_script = RUNS_FOREVER

    def decoy_arguments(self, scenario: str) -> dict[str, Any]:
        return {**self.common, "count": 3, "wait_for": "running"}

    def arrange(self) -> list[Task]:
        ecs_env = self.ecs_env
        # adopt: every RunTask reaches ECS, its answer never comes back
        self.adopt = self.fault_proxy(ecs_env.moto_url)
        self.adopt.add_rule(Reset(forward_first=True), operation="RunTask")
        # cleanup: the rollback's stops are refused, until the maintenance run
        self.cleanup = self.fault_proxy(ecs_env.moto_url)
        self.cleanup.add_rule(
            ecs_error("AccessDeniedException", "not authorized to perform ecs:StopTask"), operation="StopTask"
        )
        self.monkeypatch.setenv("AIRFLOW_CONN_AWS_ADOPT", aws_connection_json(self.adopt.url))
        self.monkeypatch.setenv("AIRFLOW_CONN_AWS_CLEANUP", aws_connection_json(self.cleanup.url))
        for scenario in ("rollback", "cleanup"):
            tenant = _pair(scenario, self.prefix)[0]
            ecs_env.script_next_run_task(
                failures=[{"reason": QUOTA_REFUSAL}],
                where=lambda body, t=tenant: (
                    _tag(body, ecs_tags.TENANT_ID_TAG) == t and _tag(body, ecs_tags.UNIT_INDEX_TAG) == "2"
                ),
                times=None,
            )
        norm = {**self.common, "tenant_id": f"{self.prefix}-norm", "wait_for": "running"}
        return [
            self._task("adopt", wait_for="running", aws_conn_id="aws_adopt", retries=1),
            self._task("rollback", count=3),
            self._task("cleanup", count=3, aws_conn_id="aws_cleanup"),
            # one tenant, two execution ids that are the same ECS tag value ("!" is not allowed)
            Task("norm_1", self.operator, {**norm, "execution_id": "norm!1"}),
            Task("norm_2", self.operator, {**norm, "execution_id": "norm_1"}),
        ]

    def _task(self, scenario: str, **arguments: Any) -> Task:
        return Task(
            scenario, self.operator, {**self.common, **_tenant_of(scenario, self.prefix), **arguments}
        )

    def after_run(self) -> None:
        self.cleanup.reset()

    def inventory(self) -> list[Any]:
        return ecs_inventory(self.ecs_env.ecs, CLUSTER_NAME)

    def check(self, run: Any, units: list[Any]) -> None:
        # the try looked for the unit whose answer it never heard, found its own among the
        # decoys of the same execution id, and waited for it
        assert self.adopt.counts.passed.get("RunTask", 0) == 0, "every launch answer was lost"
        norm = [run.xcom(t)["units"][0]["resource_id"] for t in ("norm_1", "norm_2")]
        assert len(set(norm)) == 2, "the second execution adopted the first one's task"
        assert sorted(u.resource_id for u in units if u.tenant_id == f"{self.prefix}-norm") == sorted(norm)


class _KubernetesSide(_Side):
    """The node simulator plays the kubelet: the adopt try's pod creates are dropped by a fault
    proxy (its launch gives up at the first unit; the next try finds it), the rollback's
    namespace has a quota with room for two of its three pods, the cleanup's pods wait on a
    missing image and its user may create pods but not delete them (RBAC) until the
    maintenance run."""

    provider, prefix, operator = "kubernetes", "iso-k", "KubernetesComputeOperator"
    states = {"adopt": "success", "rollback": "failed", "cleanup": "failed"}
    adopt_try = 2

    def __init__(
        self, kube_env: Any, fault_proxy: Callable[[str], FaultProxy], monkeypatch: Any, tmp: Any
    ) -> None:
        self.kube_env, self.fault_proxy, self.monkeypatch, self.tmp = kube_env, fault_proxy, monkeypatch, tmp
        core = kube_env.core
        self.quota_ns = kube_env.cluster.new_namespace("iso-quota")
        core.create_namespaced_resource_quota(
            self.quota_ns, {"metadata": {"name": "pods"}, "spec": {"hard": {"pods": "5"}}}
        )
        wait_for_quota(core, self.quota_ns, "pods")
        self.namespaces = {
            "adopt": kube_env.namespace,
            "rollback": self.quota_ns,
            "cleanup": kube_env.namespace,
        }
        self.common = {
            "operation": "provision",
            "image": "busybox:1.36",
            "container_resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            "poll_interval": 0.1,
            "retry_delay": Code("timedelta(0)"),
            "pending_grace_period": Code("timedelta(seconds=1)"),
        }

    def decoy_arguments(self, scenario: str) -> dict[str, Any]:
        return {
            **self.common,
            "namespace": self.namespaces[scenario],
            "count": 3,
            "wait_for": "running",
            "annotations": {SCRIPT_ANNOTATION: "run:forever"},
        }

    def arrange(self) -> list[Task]:
        cluster = self.kube_env.cluster
        adopt = self.fault_proxy(cluster.server)
        # every attempt of the first create reaches the server, no answer comes back
        adopt.add_rule(
            Reset(forward_first=True),
            method="POST",
            path=r"/pods$",
            times=KubernetesComputeHook.retry_settings.attempts,
        )
        adopt_config = proxied_kubeconfig(self.tmp / "adopt.kubeconfig", adopt.url, cluster.token)
        # The cleanup tenant's user may run pods but not delete them: RBAC refuses the rollback.
        cluster.grant(self.namespaces["cleanup"], ["get", "list", "watch", "create"])
        for name, config in (("adopt", adopt_config), ("cleanup", cluster.restricted_kubeconfig)):
            self.monkeypatch.setenv(
                f"AIRFLOW_CONN_KUBERNETES_{name.upper()}",
                kubernetes_connection_json(config, self.kube_env.namespace),
            )
        forever = {SCRIPT_ANNOTATION: "run:forever"}
        return [
            self._task(
                "adopt",
                count=2,
                wait_for="running",
                annotations=forever,
                kubernetes_conn_id="kubernetes_adopt",
                retries=1,
            ),
            # a partial launch: the quota has room for two of its three pods
            self._task("rollback", count=3, annotations=forever),
            # stuck on a missing image, rolled back, and the deletes refused
            self._task(
                "cleanup",
                count=2,
                annotations={SCRIPT_ANNOTATION: "waiting:ErrImagePull"},
                kubernetes_conn_id="kubernetes_cleanup",
            ),
        ]

    def _task(self, scenario: str, **arguments: Any) -> Task:
        return Task(
            scenario,
            self.operator,
            {
                **self.common,
                **_tenant_of(scenario, self.prefix),
                "namespace": self.namespaces[scenario],
                **arguments,
            },
        )

    def after_run(self) -> None:
        self.kube_env.cluster.grant(self.namespaces["cleanup"], ["delete"])  # someone fixed the Role

    def inventory(self) -> list[Any]:
        return kube_inventory(self.kube_env.core, [self.kube_env.namespace, self.quota_ns])

    def check(self, run: Any, units: list[Any]) -> None:
        assert run.xcom("rollback", key="compute_error")["code"] == "PARTIAL_FAILURE"
        provider_message = run.xcom("cleanup", key="compute_error")["root_cause"]["provider_message"]
        assert 'cannot delete resource "pods"' in provider_message

    def close(self) -> None:
        self.kube_env.cluster.delete_namespace(self.quota_ns)


def _tenant_of(scenario: str, prefix: str) -> dict[str, Any]:
    return {"tenant_id": _pair(scenario, prefix)[0], "execution_id": _execution_template(scenario)}


@pytest.fixture(params=["ecs", pytest.param("kubernetes", marks=pytest.mark.kube)])
def side(
    request: pytest.FixtureRequest,
    fault_proxy: Callable[[str], FaultProxy],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> Iterator[_Side]:
    if request.param == "ecs":
        yield _EcsSide(request.getfixturevalue("ecs_env"), fault_proxy, monkeypatch)
        return
    kube = _KubernetesSide(request.getfixturevalue("kube_env"), fault_proxy, monkeypatch, tmp_path)
    try:
        yield kube
    finally:
        kube.close()


def test_tenants_with_colliding_execution_ids_never_touch_each_others_units(
    airflow_env: Any, side: _Side, state_store: Any
) -> None:
    prefix, name = side.prefix, f"isolation_{side.provider}"
    decoys = [
        Task(
            f"decoy_{s}",
            side.operator,
            {
                **side.decoy_arguments(s),
                "tenant_id": _pair(s, prefix)[1],
                "execution_id": _execution_template(s),
            },
        )
        for s in SCENARIOS
    ]
    decoy_run = airflow_env.run_dag(
        compute_dag(f"{name}_decoys", decoys), f"{name}_decoys", logical_date=DECOYS_RUN
    )
    assert set(decoy_run.task_states().values()) == {"success"}
    decoy_tenants = [_pair(s, prefix)[1] for s in SCENARIOS]
    before = {t: _ledger(state_store, t) for t in decoy_tenants}
    decoy_units = {t: _alive_of(side.inventory(), t) for t in decoy_tenants}
    assert all(len(units) == 3 for units in decoy_units.values())

    tasks = side.arrange()
    run = airflow_env.run_dag(compute_dag(name, tasks), name, logical_date=TENANTS_RUN)
    side.after_run()
    report = Reconciler(state_store).run(RecoverySettings(cleanup_backoff=timedelta(seconds=0.1)))
    TALLY.add(operations=len(decoys) + len(tasks))

    assert run.task_states() == side.states
    assert run.try_numbers()["adopt"] == side.adopt_try
    assert run.xcom("cleanup", key="compute_error")["code"] == "CLEANUP_FAILED"
    assert report.to_json()["summary"]["resources_cleaned"] == 2, report.to_json()
    units = side.inventory()
    _check_isolated(run, units, state_store, prefix, decoy_units, before, side.provider)
    side.check(run, units)


def _tag(body: Any, key: str) -> str | None:
    return next((t["value"] for t in body.get("tags") or [] if t["key"] == key), None)


def _check_isolated(
    run: Any,
    units: list[Any],
    store: Any,
    prefix: str,
    decoy_units: dict[str, list[tuple[int, str]]],
    before: dict[str, list[tuple[Any, ...]]],
    provider: str,
) -> None:
    for scenario in SCENARIOS:
        tenant, decoy = _pair(scenario, prefix)
        assert _alive_of(units, decoy) == decoy_units[decoy], f"{scenario}: the decoy's units were touched"
        assert _ledger(store, decoy) == before[decoy], f"{scenario}: the decoy's ledger rows changed"
        assert store.get_tenant(decoy).status is TenantStatus.READY
        mine = {u.resource_id for u in units if u.tenant_id == tenant}
        assert not mine & {r for _, r in decoy_units[decoy]}, f"{scenario}: a decoy's unit counted as its own"
        if scenario != "adopt":
            assert _alive_of(units, tenant) == [], f"{scenario}: its own units still run"
            statuses = {e.status for e in store.list_resources(tenant_id=tenant)}
            assert statuses <= {ResourceStatus.STOPPED, ResourceStatus.CLEANED, ResourceStatus.FAILED}, (
                statuses
            )
    adopted = {u["resource_id"] for u in run.xcom("adopt")["units"]}
    assert adopted == {u.resource_id for u in units if u.tenant_id == _pair("adopt", prefix)[0]}
    result = audit(units, store.list_resources(), provider=provider)
    result.record(TALLY)
    assert result.clean, result.problems()
