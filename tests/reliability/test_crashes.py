"""Crashes: the process running a compute task is SIGKILLed at each step of the lifecycle, and the
next try converges.

For each provider, four ``dag.test()`` children run at once, one per step (``crashes.Step``):
before the launch, between the launch request and its record, while waiting, and while the
try settles its failure (the rollback's stops sent, their outcome not recorded). Each child
reaches ECS or the Kubernetes API server through a fault proxy of its own that injects no
fault: its ``after_forward`` hook SIGKILLs the child's process group once the request of its
step has been answered. Each child has its own copy of the Airflow metadata DB (SQLite is not
for four writers); the tenant state store is shared, as it is between workers.

What the kill left is checked (nothing launched; launched but not in the ledger; in the ledger
and waiting; stops sent, rows still ``stopping``). Then the next try runs, in this process,
for the same DAG run and so the same execution id; then one maintenance run
(``recovery.Reconciler``), as the maintenance DAG would. Afterwards: the outcome the scenario
dictates (for the first three, every unit running: ``wait_for="running"``, so a next try that
launched instead of adopting would leave two live generations; for the fourth, the scenario's
failure), exactly one unit per index for the tries that succeed, followed by the ledger, no unit
alive after a failure and no ledger row left open, the tenant in the state its outcome leads to,
no try left in progress, and the audit (nothing lost, duplicated or leaked).

moto plays ECS and the node simulator the kubelet; the rest is real.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_compute_provider.hooks import ecs_tags
from airflow_compute_provider.recovery import Reconciler, RecoverySettings
from airflow_compute_provider.state.status import OperationStatus, ResourceStatus, TenantStatus
from tests.harness.ecs import CLUSTER_NAME, aws_connection_json
from tests.harness.ecs_script import RUNS_FOREVER, TaskScript, exited
from tests.harness.kube import AIRFLOW_CONN_ENV, kubernetes_connection_json
from tests.harness.proxy import FaultProxy
from tests.integration.ecs_dags import Code, ecs_dag
from tests.integration.kubernetes_dags import kube_dag
from tests.reliability.audit import audit, ecs_inventory, kube_inventory
from tests.reliability.connections import proxied_kubeconfig
from tests.reliability.crashes import KillSwitch, Step, child_database, kill_group
from tests.reliability.tally import TALLY

pytestmark = [pytest.mark.reliability, pytest.mark.airflow]

COUNT = 2
_OPEN = (ResourceStatus.INTENDED, ResourceStatus.LAUNCHED, ResourceStatus.RUNNING, ResourceStatus.STOPPING)


@dataclass(frozen=True)
class Case:
    provider: str
    step: Step
    deferrable: bool
    number: int

    @property
    def dag_id(self) -> str:
        return f"crash_{self.provider}_{self.step.value}"

    @property
    def tenant_id(self) -> str:
        return f"crash-{'k' if self.provider == 'kubernetes' else 'e'}-{self.step.value.replace('_', '-')}"

    @property
    def logical_date(self) -> datetime:
        return datetime(2026, 10, 1, tzinfo=UTC) + timedelta(hours=self.number)

    @property
    def fails(self) -> bool:
        """The outcome step's scenario is a failure: a rollback was under way."""
        return self.step is Step.OUTCOME


def _cases(provider: str) -> list[Case]:
    deferrable = {
        Step.BEFORE_LAUNCH: False,
        Step.LAUNCH_UNRECORDED: True,
        Step.WAITING: False,
        Step.OUTCOME: True,
    }
    if provider == "kubernetes":
        deferrable = {step: not value for step, value in deferrable.items()}
    offset = 0 if provider == "ecs" else 10
    return [Case(provider, step, deferrable[step], offset + n) for n, step in enumerate(Step)]


@dataclass
class Crash:
    case: Case
    proxy: FaultProxy
    switch: KillSwitch
    connection: str
    source: str
    child: Any = None


def _launch_children(
    airflow_env: Any,
    crashes: Sequence[Crash],
    tmp_path: Path,
    conn_env: str,
) -> None:
    for crash in crashes:
        database = child_database(airflow_env.home, tmp_path / f"{crash.case.dag_id}.db")
        env = {conn_env: crash.connection, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database}
        crash.child = airflow_env.run_dag_in_subprocess(
            crash.source, crash.case.dag_id, logical_date=crash.case.logical_date, env=env
        )
        crash.switch.arm(kill_group(crash.child))
    for crash in crashes:
        crash.child.wait(timeout=240)
    for crash in crashes:
        assert crash.child.popen.returncode == -signal.SIGKILL, (
            f"{crash.case.dag_id} was never killed:\n{crash.child.log_text()[-3000:]}"
        )
        assert crash.switch.fired is not None
    TALLY.add(crashes=len(crashes), operations=len(crashes))


def _check_at_the_kill(crash: Crash, store: Any, units: Sequence[Any]) -> None:
    """What the kill left behind is what its step says it should be."""
    case = crash.case
    tries = store.operations(case.tenant_id)
    assert [(op.attempt, op.status) for op in tries] == [(1, OperationStatus.IN_PROGRESS)], case
    rows = [e for e in store.list_resources(tenant_id=case.tenant_id)]
    mine = [u for u in units if u.tenant_id == case.tenant_id]
    if case.step is Step.BEFORE_LAUNCH:
        assert mine == [], f"{case}: launched before the kill"
        assert all(r.resource_id is None for r in rows), case
    elif case.step is Step.LAUNCH_UNRECORDED:
        assert mine, f"{case}: the launch request did not reach the provider"
        assert all(r.status is ResourceStatus.INTENDED and r.resource_id is None for r in rows), (
            f"{case}: the launch was recorded before the kill: {rows}"
        )
    elif case.step is Step.WAITING:
        assert len(mine) == COUNT, case
        assert {r.status for r in rows} <= {ResourceStatus.LAUNCHED, ResourceStatus.RUNNING}, (case, rows)
    else:
        assert ResourceStatus.STOPPING in {r.status for r in rows}, (case, rows)


def _converged(crash: Crash, run: Any, store: Any, units: Sequence[Any], code: str) -> None:
    case = crash.case
    tenant = store.get_tenant(case.tenant_id)
    tries = store.operations(case.tenant_id)
    assert not [op for op in tries if op.status is OperationStatus.IN_PROGRESS], (case, tries)
    mine = [u for u in units if u.tenant_id == case.tenant_id]
    rows = store.list_resources(tenant_id=case.tenant_id)
    assert not tenant.held, case
    if case.fails:
        assert not [r for r in rows if r.status in _OPEN], case
        assert run.state() == "failed", case
        error = run.xcom("provision", key="compute_error")
        # Every unit fails with ``code``; a poll that sees one failed while the other has no
        # status yet (a loaded node) makes it a partial failure of that code, rolled back.
        failed = (error.get("units") or {}).get("failed", [])
        partial = error["code"] == "PARTIAL_FAILURE" and {f["error"]["code"] for f in failed} == {code}
        assert error["code"] == code or partial, (case, error)
        assert [u.resource_id for u in mine if u.alive] == [], f"{case}: units alive after the failure"
        assert tenant.status is TenantStatus.NEEDS_INVESTIGATION, case
        return
    assert run.state() == "success", case
    result = run.xcom("provision")
    assert sorted((u["index"], u["status"]) for u in result["units"]) == [(0, "running"), (1, "running")]
    # exactly one set: the killed try and the next one launched one unit per index between them,
    # and it runs on, followed by the ledger
    assert sorted((u.index, u.generation, u.alive) for u in mine) == [(0, 1, True), (1, 1, True)], mine
    assert {u["resource_id"] for u in result["units"]} == {u.resource_id for u in mine}, case
    assert sorted((r.unit_index, r.generation, r.status) for r in rows) == [
        (0, 1, ResourceStatus.RUNNING),
        (1, 1, ResourceStatus.RUNNING),
    ], case
    assert tenant.status is TenantStatus.READY, case


def _rerun_and_audit(
    crashes: Sequence[Crash],
    airflow_env: Any,
    store: Any,
    monkeypatch: pytest.MonkeyPatch,
    conn_env: str,
    inventory: Callable[[], list[Any]],
    failure_code: str,
) -> None:
    at_the_kill = inventory()
    for crash in crashes:
        _check_at_the_kill(crash, store, at_the_kill)
    runs = {}
    for crash in crashes:
        crash.proxy.reset()
        monkeypatch.setenv(conn_env, crash.connection)
        runs[crash.case] = airflow_env.run_dag(
            crash.source, crash.case.dag_id, logical_date=crash.case.logical_date
        )
    report = Reconciler(store).run(RecoverySettings(cleanup_backoff=timedelta(seconds=0.1)))
    assert not report.cleanup_error(), report.to_json()
    units = inventory()
    for crash in crashes:
        _converged(crash, runs[crash.case], store, units, failure_code)
    result = audit(units, store.list_resources(), provider=crashes[0].case.provider)
    result.record(TALLY)
    assert result.clean, result.problems()


def test_ecs_worker_killed_at_every_step_converges_on_the_next_try(
    airflow_env: Any,
    ecs_env: Any,
    fault_proxy: Callable[[str], FaultProxy],
    state_store: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    crashes = []
    for case in _cases("ecs"):
        proxy = fault_proxy(ecs_env.moto_url)
        source = ecs_dag(
            case.dag_id,
            network_configuration=ecs_env.network_configuration,
            tenant_id=case.tenant_id,
            count=COUNT,
            deferrable=case.deferrable,
            timeout=Code("timedelta(seconds=60)"),
            wait_for="completion" if case.fails else "running",
        )
        key = case.tenant_id

        def mine(task: Any, tenant: str = key) -> bool:
            return task.tags.get(ecs_tags.TENANT_ID_TAG) == tenant

        if case.fails:
            # unit 1 exits 1 in every generation, unit 0 runs until stopped: a partial failure
            # whose rollback stops unit 0
            ecs_env.script_tasks(
                TaskScript(outcome=exited(1)),
                count=None,
                where=lambda t, m=mine: m(t) and t.tags.get(ecs_tags.UNIT_INDEX_TAG) == "1",
            )
            ecs_env.script_tasks(RUNS_FOREVER, count=None, where=mine)
        else:
            ecs_env.script_tasks(TaskScript(pending=1, running=None), count=None, where=mine)
        crashes.append(
            Crash(case, proxy, KillSwitch(proxy, "ecs", case.step), aws_connection_json(proxy.url), source)
        )

    _launch_children(airflow_env, crashes, tmp_path, "AIRFLOW_CONN_AWS_DEFAULT")

    _rerun_and_audit(
        crashes,
        airflow_env,
        state_store,
        monkeypatch,
        "AIRFLOW_CONN_AWS_DEFAULT",
        lambda: ecs_inventory(ecs_env.ecs, CLUSTER_NAME),
        "PARTIAL_FAILURE",
    )


def test_kubernetes_worker_killed_at_every_step_converges_on_the_next_try(
    airflow_env: Any,
    kube_env: Any,
    fault_proxy: Callable[[str], FaultProxy],
    state_store: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    crashes = []
    for case in _cases("kubernetes"):
        proxy = fault_proxy(kube_env.cluster.server)
        kubeconfig = proxied_kubeconfig(
            tmp_path / f"{case.dag_id}.kubeconfig", proxy.url, kube_env.cluster.token
        )
        # the outcome step: both pods stuck on a missing image, rolled back after the grace period
        script = "waiting:ErrImagePull" if case.fails else "pending:200ms,run:forever"
        source = kube_dag(
            case.dag_id,
            namespace=kube_env.namespace,
            script=script,
            tenant_id=case.tenant_id,
            count=COUNT,
            deferrable=case.deferrable,
            timeout=Code("timedelta(seconds=60)"),
            wait_for="completion" if case.fails else "running",
        )
        switch = KillSwitch(proxy, "kubernetes", case.step, stops=COUNT)
        connection = kubernetes_connection_json(kubeconfig, kube_env.namespace)
        crashes.append(Crash(case, proxy, switch, connection, source))

    _launch_children(airflow_env, crashes, tmp_path, AIRFLOW_CONN_ENV)

    _rerun_and_audit(
        crashes,
        airflow_env,
        state_store,
        monkeypatch,
        AIRFLOW_CONN_ENV,
        lambda: kube_inventory(kube_env.core, [kube_env.namespace]),
        "IMAGE_NOT_FOUND",
    )
