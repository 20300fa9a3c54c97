"""The distributed soak: many operations at once on the CeleryExecutor stack, with a worker and a
triggerer SIGKILLed and PostgreSQL restarted while they run.

The stack (``celery_stack``: PostgreSQL, Redis, api-server, scheduler, dag-processor, two Celery
workers, two triggerers) runs two DAGs whose tasks are the chaos suite's operations
(``tests/reliability/scenarios.py``: successes, units left running, container failures, missing
images, partial launches rolled back or retried with ``retry_failed``, timeouts that leave work
running) and launches refused for permission with an answer echoing a secret of the request
(``access_denied``: a manual error, through connections of their own to an echo proxy that
answers RunTask and pod creates so), each on a tenant of its own, deferrable and blocking
alternating: one DAG on ECS (moto behind a fault proxy), one on Kubernetes (the test cluster
and node simulator behind another), with ``FAULT_RATE`` of the provider requests faulted
(``faults.add_chaos``). The tasks are independent, so the workers run them side by side (the
test records the most at once).

While they run: worker-1 is SIGKILLed (its process group: the task processes die with it; the
scheduler fails their tries once their heartbeat is 30 s old and the retry policy sends them
round again), then the triggerer holding the most triggers (the other one must adopt every one
of them, checked in the metadata database, and resume their polling in its own shared pollers;
their operations still end as their scenarios dictate), then PostgreSQL is stopped and started again (every
process loses its connections at once; Airflow's components exit when the database stays away),
and the stack's supervisor starts whatever died again, as compose's ``restart: unless-stopped``
does. Then the maintenance DAG runs, and the audit reads moto, the API server
and the state store directly (``tests/reliability/audit.py``): lost 0, duplicated 0, orphaned
(a provider unit with no ledger row, or alive while its row is over) 0, and every operation
ended as its scenario dictates. Secret canaries, planted in ECS overrides, pod env values, the
connections' passwords and the echoed error answers, appear in no log file of any process, no
XCom, no stored row and no trigger event.

Size: about ``SOAK_OPS`` operations in all (every scenario at least once per provider; default
16, a few minutes; ``make soak`` runs 200). The stack's logs, the task logs and the state
store's rows are kept in ``$SOAK_KEEP`` (default: the test's ``tmp_path``).
It prints::

    distributed: <ops> operations, <tenants> tenants, <workers> workers, <triggerers> triggerers,
    <kills> kills, <faults> faults; lost 0, duplicated 0, orphaned 0, canaries 0
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from airflow_compute_provider.state import SqlTenantStateStore
from tests.harness.airflow_stack import AirflowRestClient
from tests.harness.celery_stack import TRIGGERERS, WORKERS, CeleryStack, component_hostname
from tests.harness.ecs import CLUSTER_NAME, FAKE_CREDENTIALS, REGION, TASK_FAMILY
from tests.harness.kube import wait_for_quota
from tests.harness.proxy import FaultProxy
from tests.harness.proxy_faults import ecs_error, kube_error
from tests.reliability import scenarios
from tests.reliability.audit import audit as audit_units
from tests.reliability.audit import ecs_inventory, kube_inventory
from tests.reliability.connections import proxied_kubeconfig
from tests.reliability.dags import Code, compute_dag
from tests.reliability.faults import add_chaos
from tests.reliability.scenarios import Ended, Op, Scenario
from tests.unit.state.support import snapshot

pytestmark = [pytest.mark.distributed, pytest.mark.kube]

FAULT_RATE = 0.15
SOAK_OPS = int(os.environ.get("SOAK_OPS", "16"))
RUN_TIMEOUT = float(os.environ.get("SOAK_RUN_TIMEOUT", "1800"))
AWS_CONN = "aws_soak"
KUBE_CONN = "kube_soak"
#: the access_denied ops' connections: through a proxy that refuses their launches
AWS_ECHO_CONN = "aws_soak_echo"
KUBE_ECHO_CONN = "kube_soak_echo"
ACTIVE_STATES = frozenset({"running", "deferred", "queued", "scheduled", "up_for_retry"})


def _mix(total: int) -> dict[Scenario, int]:
    """``scenarios.MIX`` (50 ops), plus 2 in 50 refused for permission, scaled to ``total``,
    every scenario at least once."""
    mix = {**scenarios.MIX, Scenario.ACCESS_DENIED: 2}
    return {s: max(1, round(n * total / 50)) for s, n in mix.items()}


def _canary(label: str) -> str:
    return f"canary{secrets.token_hex(6)}{label}"


def _write_connection(client: AirflowRestClient, connection: dict[str, Any]) -> None:
    answer = client.request(
        "PATCH",
        "/connections",
        json={
            "actions": [{"action": "create", "entities": [connection], "action_on_existence": "overwrite"}]
        },
    )
    assert not answer["create"]["errors"], answer


def _task_instances(client: AirflowRestClient, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Every task instance of a run (the API's default page holds 50)."""
    listed = client.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params={"limit": 1000})
    instances: list[dict[str, Any]] = listed["task_instances"]
    assert len(instances) == listed["total_entries"], "more task instances than one page"
    return instances


class Sampler(threading.Thread):
    """Counts the task instances running or deferred at once, every second."""

    def __init__(self, client: AirflowRestClient, runs: list[tuple[str, str]]) -> None:
        super().__init__(daemon=True)
        self.client, self.runs = client, runs
        self.most = 0
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(1.0):
            try:
                busy = 0
                for dag_id, run_id in self.runs:
                    for ti in _task_instances(self.client, dag_id, run_id):
                        busy += ti["state"] in ("running", "deferred")
                self.most = max(self.most, busy)
            except Exception:
                continue

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=10)


class Triggers:
    """The triggers and triggerer jobs in the metadata database; each triggerer's jobs carry
    its own hostname (``celery_stack.component_hostname``)."""

    def __init__(self, stack: CeleryStack) -> None:
        self.stack = stack
        self.engine = sa.create_engine(stack.metadata_url)

    def _rows(self, sql: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql)))

    def job_of(self, name: str) -> int:
        """The newest triggerer job of component ``name`` (its own hostname, ``celery_stack``)."""
        rows = self._rows(
            "SELECT max(id) FROM job WHERE job_type = 'TriggererJob' "
            f"AND hostname = '{component_hostname(name)}'"
        )
        [(job,)] = rows
        assert job is not None, f"{name} has no triggerer job"
        return int(job)

    def busiest_triggerer(self, timeout: float = 300) -> tuple[str, set[int]]:
        """Wait until a triggerer holds triggers; the busier one's name and its triggers' ids."""
        deadline = time.monotonic() + timeout
        while True:
            jobs = {name: self.job_of(name) for name in ("triggerer-1", "triggerer-2")}
            rows = self._rows("SELECT id, triggerer_id FROM trigger WHERE triggerer_id IS NOT NULL")
            held = {name: {t for t, job in rows if job == jobs[name]} for name in jobs}
            name = max(held, key=lambda n: len(held[n]))
            if len(held[name]) >= 2 or (held[name] and time.monotonic() > deadline):
                return name, held[name]
            if time.monotonic() > deadline:
                raise AssertionError("no trigger was ever assigned to a triggerer")
            time.sleep(1)

    def wait_for_adoption(self, held: set[int], timeout: float = 120) -> int:
        """How many of ``held`` (triggers of a killed triggerer) another triggerer took over, or
        that fired there before the check saw them (a trigger row goes once its event is in)."""
        dead = dict(
            self._rows(f"SELECT id, triggerer_id FROM trigger WHERE id IN ({','.join(map(str, held))})")
        )
        deadline = time.monotonic() + timeout
        while True:
            now = dict(
                self._rows(f"SELECT id, triggerer_id FROM trigger WHERE id IN ({','.join(map(str, held))})")
            )
            moved = [t for t in held if t not in now or (now[t] is not None and now[t] != dead.get(t))]
            if len(moved) == len(held) or time.monotonic() > deadline:
                return len(moved)
            time.sleep(1)


def _echo_proxies(
    fault_proxy: Callable[[str], FaultProxy], ecs_env: Any, kube_env: Any, canaries: Mapping[str, str]
) -> tuple[FaultProxy, FaultProxy]:
    """Proxies to moto and the API server that refuse every launch for permission, their answers
    repeating a secret of the request and the AWS password: the worst a provider's error body
    can do. What the provider logs, stores and returns of them must be masked."""
    ecs_echo = fault_proxy(ecs_env.moto_url)
    ecs_echo.add_rule(
        ecs_error(
            "AccessDeniedException",
            "User: arn:aws:iam::123456789012:user/soak is not authorized to perform: ecs:RunTask "
            f"(request TOKEN={canaries['ecsecho']}, signed with {canaries['awspassword']})",
        ),
        operation="RunTask",
    )
    kube_echo = fault_proxy(kube_env.cluster.server)
    kube_echo.add_rule(
        kube_error(
            403,
            "Forbidden",
            'pods is forbidden: User "system:serviceaccount:soak:runner" cannot create resource "pods" '
            f'in API group "" (request env SECRET={canaries["podecho"]})',
        ),
        method="POST",
        path=r"/pods$",
    )
    return ecs_echo, kube_echo


def _echo_arguments(op: Op, provider: str, canaries: Mapping[str, str]) -> dict[str, Any]:
    """An access_denied op's own connection, and the secret its refusal echoes in its request."""
    if op.scenario is not Scenario.ACCESS_DENIED:
        return {}
    if provider == "ecs":
        environment = [{"name": "TOKEN", "value": canaries["ecsecho"]}]
        return {
            "aws_conn_id": AWS_ECHO_CONN,
            "overrides": {"containerOverrides": [{"name": "main", "environment": environment}]},
        }
    return {"kubernetes_conn_id": KUBE_ECHO_CONN, "env_vars": {"SECRET": canaries["podecho"]}}


def _wait_until_busy(sampler: Sampler, at_least: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while sampler.most < at_least and time.monotonic() < deadline:
        time.sleep(1)


@pytest.fixture
def quota_namespaces(kube_env: Any) -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for name in made:
        kube_env.cluster.delete_namespace(name)


@pytest.mark.timeout(RUN_TIMEOUT + 1200)  # the run, plus the stack, the maintenance run and the audit
def test_distributed_soak(
    celery_stack: CeleryStack,
    stack_client: AirflowRestClient,
    ecs_env: Any,
    kube_env: Any,
    fault_proxy: Callable[[str], FaultProxy],
    quota_namespaces: list[str],
    tmp_path: Path,
) -> None:
    client = stack_client
    canaries = {
        k: _canary(k) for k in ("ecsenv", "podenv", "awspassword", "kubepassword", "ecsecho", "podecho")
    }
    ecs_proxy = fault_proxy(ecs_env.moto_url)
    kube_proxy = fault_proxy(kube_env.cluster.server)
    ecs_echo, kube_echo = _echo_proxies(fault_proxy, ecs_env, kube_env, canaries)
    for conn_id, proxy in ((AWS_CONN, ecs_proxy), (AWS_ECHO_CONN, ecs_echo)):
        _write_connection(
            client,
            {
                "connection_id": conn_id,
                "conn_type": "aws",
                "login": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                # moto does not check it; botocore signs with it, and it must be masked everywhere
                "password": canaries["awspassword"],
                "extra": json.dumps({"endpoint_url": proxy.url, "region_name": REGION}),
            },
        )
    for conn_id, proxy in ((KUBE_CONN, kube_proxy), (KUBE_ECHO_CONN, kube_echo)):
        kubeconfig = proxied_kubeconfig(tmp_path / f"{conn_id}.kubeconfig", proxy.url, kube_env.cluster.token)
        _write_connection(
            client,
            {
                "connection_id": conn_id,
                "conn_type": "kubernetes",
                "password": canaries["kubepassword"],
                "extra": json.dumps({"kube_config_path": str(kubeconfig), "namespace": kube_env.namespace}),
            },
        )

    half = max(len(Scenario), SOAK_OPS // 2)
    ecs_ops = scenarios.plan("ecs", "soak-ecs", _mix(half))
    kube_ops = scenarios.plan("kubernetes", "soak-kube", _mix(SOAK_OPS - half))
    for op in ecs_ops:
        scenarios.ecs_setup(op, ecs_env)
    ecs_common = {
        "cluster": CLUSTER_NAME,
        "task_definition": TASK_FAMILY,
        "launch_type": "FARGATE",
        "network_configuration": ecs_env.network_configuration,
        "aws_conn_id": AWS_CONN,
        "overrides": {
            "containerOverrides": [
                {"name": "main", "environment": [{"name": "TOKEN", "value": canaries["ecsenv"]}]}
            ]
        },
    }
    ecs_tasks = [scenarios.task_of(op, ecs_common | _echo_arguments(op, "ecs", canaries)) for op in ecs_ops]
    kube_tasks = []
    core = kube_env.core
    for op in kube_ops:
        namespace = kube_env.namespace
        if op.scenario is Scenario.PARTIAL_ROLLBACK:
            namespace = kube_env.cluster.new_namespace("quota")
            quota_namespaces.append(namespace)
            core.create_namespaced_resource_quota(
                namespace, {"metadata": {"name": "pods"}, "spec": {"hard": {"pods": "2"}}}
            )
        elif op.scenario is Scenario.PARTIAL_RETRY_FAILED:
            core.create_namespaced_pod(namespace, scenarios.foreign_pod(op, namespace))
        common = {
            "image": "busybox:1.36",
            "cmds": ["sh", "-c", "true"],
            "container_resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
            "kubernetes_conn_id": KUBE_CONN,
            "env_vars": {"SECRET": canaries["podenv"]},
        }
        common |= _echo_arguments(op, "kubernetes", canaries)
        kube_tasks.append(scenarios.task_of(op, common, namespace=namespace))
    for namespace in quota_namespaces:
        wait_for_quota(core, namespace, "pods")

    # The chaos suite's 60 s bound is for one process: here a try on the killed worker is failed
    # only after its heartbeat is 30 s old and its scheduler's task instances were adopted, and
    # a retry after the operation's deadline rightly ends as OPERATION_TIMEOUT.
    for task, op in zip([*ecs_tasks, *kube_tasks], [*ecs_ops, *kube_ops], strict=True):
        if op.scenario is not Scenario.TIMEOUT:
            task.arguments["timeout"] = Code("timedelta(seconds=600)")
    dags = {"soak_ecs": ecs_tasks, "soak_kube": kube_tasks}
    for dag_id, tasks in dags.items():
        (celery_stack.dags_folder / f"{dag_id}.py").write_text(compute_dag(dag_id, tasks))
    (celery_stack.dags_folder / "soak_maintenance.py").write_text(
        "from airflow_compute_provider.dags import create_maintenance_dag\n"
        "dag = create_maintenance_dag('soak_maintenance', schedule=None)\n"
    )
    for dag_id in [*dags, "soak_maintenance"]:
        client.wait_for_dag(dag_id, timeout=300)

    add_chaos(ecs_proxy, "ecs", rate=FAULT_RATE, seed=1700)
    add_chaos(kube_proxy, "kubernetes", rate=FAULT_RATE, seed=5900)
    started = time.monotonic()
    runs = [(dag_id, client.trigger(dag_id)) for dag_id in dags]
    sampler = Sampler(client, runs)
    sampler.start()

    # -- the disruptions, while the operations run -----------------------------------------
    triggers = Triggers(celery_stack)
    kills = 0
    _wait_until_busy(sampler, 4)
    celery_stack.kill("worker-1")
    kills += 1
    # the triggerer holding the most triggers goes; the other one must adopt them
    victim, held = triggers.busiest_triggerer()
    celery_stack.kill(victim)
    kills += 1
    adopted = triggers.wait_for_adoption(held)
    time.sleep(5)
    celery_stack.restart_postgres(down_seconds=3)
    # the stack's supervisor (compose's restart policy) brings back the killed components and
    # those that exited while PostgreSQL was down; the other worker and triggerer carried on

    finished = {dag_id: client.wait_for_run(dag_id, run_id, timeout=RUN_TIMEOUT) for dag_id, run_id in runs}
    sampler.stop()
    counts = {"ecs": ecs_proxy.counts, "kubernetes": kube_proxy.counts}
    ecs_proxy.reset()
    kube_proxy.reset()
    faults = sum(sum(c.faulted.values()) for c in counts.values())

    maintenance = client.trigger("soak_maintenance")
    client.wait_for_run("soak_maintenance", maintenance, timeout=600)

    # -- the audit ---------------------------------------------------------------------------
    store = SqlTenantStateStore(celery_stack.state_url)
    try:
        wrong: list[str] = []
        hosts: set[str] = set()
        ecs_units = ecs_inventory(ecs_env.ecs, CLUSTER_NAME)
        kube_units = kube_inventory(core, [kube_env.namespace, *quota_namespaces])
        for (dag_id, run_id), ops, units in (
            (runs[0], ecs_ops, ecs_units),
            (runs[1], kube_ops, kube_units),
        ):
            instances = {ti["task_id"]: ti for ti in _task_instances(client, dag_id, run_id)}
            hosts.update(ti["hostname"] for ti in instances.values() if ti["hostname"])
            for op in ops:
                wrong += scenarios.check(op, _ended(client, dag_id, run_id, op, instances, store, units))
        ledger = store.list_resources()
        ecs_audit = audit_units(ecs_units, ledger, provider="ecs")
        kube_audit = audit_units(kube_units, ledger, provider="kubernetes")
        stored = snapshot(celery_stack.state_url)
    finally:
        store.close()
    leaks = _canary_leaks(celery_stack, client, runs, [*ecs_ops, *kube_ops], canaries, stored)

    # kept for a look afterwards: the processes' logs, the task logs and the state store's rows
    keep = Path(os.environ.get("SOAK_KEEP", str(tmp_path / "kept")))
    shutil.copytree(celery_stack.logs, keep / "stack-logs", dirs_exist_ok=True)
    shutil.copytree(celery_stack.home / "airflow" / "logs", keep / "task-logs", dirs_exist_ok=True)
    (keep / "state-store.json").write_text(json.dumps(stored, indent=1))
    lost = len(ecs_audit.lost) + len(kube_audit.lost)
    duplicated = len(ecs_audit.duplicated) + len(kube_audit.duplicated)
    orphaned = len(ecs_audit.leaked) + len(kube_audit.leaked)
    ops_total = len(ecs_ops) + len(kube_ops)
    tenants = len({op.tenant_id for op in [*ecs_ops, *kube_ops]})
    line = (
        f"distributed: {ops_total} operations, {tenants} tenants, {WORKERS} workers, "
        f"{TRIGGERERS} triggerers, {kills} kills, {faults} faults; lost {lost}, "
        f"duplicated {duplicated}, orphaned {orphaned}, canaries {len(leaks)}"
    )
    print(
        f"\n{line}\n({victim} killed holding {len(held)} triggers, {adopted} adopted by the other; "
        f"run states {[r['state'] for r in finished.values()]}, at most {sampler.most} "
        f"task instances running or deferred at once, {time.monotonic() - started:.0f} s, "
        f"PostgreSQL restarted once)"
    )
    SUMMARY.append(line)
    assert not wrong, "operations that did not end as their scenario dictates:\n" + "\n".join(wrong)
    assert ecs_audit.clean, ecs_audit.problems()
    assert kube_audit.clean, kube_audit.problems()
    assert not leaks, "canaries found:\n" + "\n".join(leaks[:20])
    assert faults > 0
    # both workers ran tasks (each has a hostname of its own)
    assert {component_hostname("worker-1"), component_hostname("worker-2")} <= hosts, hosts
    assert held
    assert adopted == len(held), f"{adopted} of {len(held)} triggers adopted"
    if SOAK_OPS >= 16:
        assert sampler.most >= 8, f"at most {sampler.most} operations ran at once"


#: the summary line(s), printed again at the end of the session (``conftest.py``)
SUMMARY: list[str] = []


def _ended(
    client: AirflowRestClient,
    dag_id: str,
    run_id: str,
    op: Op,
    instances: Mapping[str, Any],
    store: SqlTenantStateStore,
    units: list[Any],
) -> Ended:
    def xcom(key: str) -> Any:
        try:
            return client.xcom(dag_id, run_id, op.task_id, key=key)
        except RuntimeError:  # 404: no such XCom
            return None

    tenant = store.get_tenant(op.tenant_id)
    tries = [o for o in store.operations(op.tenant_id) if o.execution_id == op.execution_id]
    return Ended(
        task_state=(instances.get(op.task_id) or {}).get("state"),
        result=xcom("return_value"),
        error=xcom("compute_error"),
        tenant_status=tenant.status if tenant else None,
        last_operation=tries[0].status if tries else None,
        units=[u for u in units if u.exec_key == op.key],
    )


def _canary_leaks(
    stack: CeleryStack,
    client: AirflowRestClient,
    runs: list[tuple[str, str]],
    ops: list[Op],
    canaries: Mapping[str, str],
    stored: Mapping[str, list[str]],
) -> list[str]:
    """Where a canary shows: every log file of every process (the components' own logs and
    the task logs under the stack's AIRFLOW_HOME), XComs, the state store, trigger events."""
    found: list[str] = []

    def look(where: str, text: str) -> None:
        found.extend(f"{label} in {where}" for label, value in canaries.items() if value in text)

    for path in [*stack.logs.rglob("*"), *(stack.home / "airflow").rglob("*.log")]:
        if path.is_file():
            look(str(path.relative_to(stack.home)), path.read_text(errors="replace"))
    for dag_id, run_id in runs:
        entries = client.request(
            "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/~/xcomEntries", params={"limit": 1000}
        )
        for entry in entries.get("xcom_entries", []):
            value = client.request(
                "GET",
                f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{entry['task_id']}/xcomEntries/{entry['key']}",
            )
            look(f"XCom {dag_id}.{entry['task_id']}.{entry['key']}", json.dumps(value))
    look("the state store", json.dumps(stored))
    # trigger events reach the task instance as its next_kwargs
    engine = sa.create_engine(stack.metadata_url)
    try:
        with engine.connect() as conn:
            for row in conn.execute(sa.text("SELECT task_id, next_kwargs FROM task_instance")):
                look(f"trigger event of {row[0]}", json.dumps(row[1], default=str))
    finally:
        engine.dispose()
    assert len(ops) > 0
    return found
