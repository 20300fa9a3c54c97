"""KubernetesComputeOperator end to end: real Airflow (``dag.test()``), the real API server with
kube-scheduler and the controller manager, a real node (containerd, runc and a kubelet:
``tests/harness/realnode.py``), the fault proxy on the wire, and the tenant state store on SQLite.

Nothing is mocked. The pods run on the real node (``kube_env.dag(..., sh="...")``): their shell
command really runs and prints (the tests read it back through ``pods/{name}/log``), exits with
its own code, is OOM-killed by the memory cgroup at its limit, stopped by the kubelet at
``activeDeadlineSeconds``; a missing ConfigMap key and an image that is not there fail with the
kubelet's and containerd's own words. Pods are admitted or refused by the real admission chain
(ServiceAccount, ResourceQuota, validation) after real RBAC authorization, scheduled or found
unschedulable by the real scheduler, and deleted by the real API server and kubelet. An RBAC 403
comes from connecting as the cluster's restricted user (``RESTRICTED_USER``, allowed to read pods
in the test's namespace but not to create them); a missing service account's 403 from the
ServiceAccount admission plugin. The fault proxy injects only what is a wire fault by nature
(throttling, 5xx, resets, delays).

Still simulated (``node_simulator``, a pod script ``sim.compute.test/script``), because one machine
cannot do it for real: an eviction under node pressure (it would need this shared machine out of
memory).
"""

from __future__ import annotations

import re
import secrets
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from airflow_compute_provider.hooks.kubernetes import KubernetesComputeHook
from airflow_compute_provider.hooks.kubernetes_pods import LABEL_GENERATION, LABEL_UNIT_INDEX
from airflow_compute_provider.state.config import open_state_store
from airflow_compute_provider.state.status import ResourceStatus, TenantStatus
from tests.harness.kube import AIRFLOW_CONN_ENV, kubernetes_connection_json, wait_for
from tests.harness.kubecluster import RESTRICTED_USER
from tests.harness.proxy import FaultProxy, RequestInfo
from tests.harness.proxy_faults import Delay, Reset, kube_throttle, kube_unavailable
from tests.harness.realnode import RealNode
from tests.integration.kubernetes_dags import FOREVER, REAL_IMAGE, Code, KubeEnv, on_node, sh_command

pytestmark = [pytest.mark.kube, pytest.mark.airflow]

#: a pod create (POST) or list (GET, with its label selector in the query string)
PODS = r"/namespaces/[^/]+/pods(\?|$)"
HOOK_ATTEMPTS = KubernetesComputeHook.retry_settings.attempts


@pytest.fixture(autouse=True)
def _on_the_real_node(kube_env: KubeEnv, real_node: RealNode) -> None:
    """The harness's ``kube_env``, whose pods may also run for real (``kube_env.dag(sh=...)``)."""
    kube_env.node = real_node


@pytest.fixture
def proxied(kube_env: KubeEnv, fault_proxy: Callable[[str], FaultProxy]) -> FaultProxy:
    """The Airflow connection goes through a fault proxy; the test's own reads do not."""
    proxy = fault_proxy(kube_env.cluster.server)
    kube_env.route_through(proxy.url)
    return proxy


def _run(airflow_env: Any, kube_env: KubeEnv, dag_id: str, **kwargs: Any) -> Any:
    return airflow_env.run_dag(kube_env.dag(dag_id, **kwargs), dag_id)


def _condition(pod: Any, kind: str) -> str | None:
    return next((c.status for c in pod.status.conditions or [] if c.type == kind), None)


def _two_containers(node: RealNode, main: str, sidecar: str) -> dict[str, Any]:
    """A pod template (API JSON) for the real node whose two containers run their own shell text."""
    resources = {"requests": {"cpu": "20m", "memory": "16Mi"}}
    return on_node(
        {
            "metadata": {"labels": {"app": "two-containers"}},
            "spec": {
                "containers": [
                    {"name": name, "image": REAL_IMAGE, "command": sh_command(text), "resources": resources}
                    for name, text in (("main", main), ("sidecar", sidecar))
                ],
            },
        },
        node,
    )


# -- success ----------------------------------------------------------------------------------


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_completion_returns_every_unit_and_frees_the_tenant(airflow_env, kube_env, deferrable) -> None:
    tenant = f"k-ok-{int(deferrable)}"
    dag_id = f"kube_ok_{int(deferrable)}"
    run = _run(
        airflow_env,
        kube_env,
        dag_id,
        tenant_id=tenant,
        count=2,
        sh="echo hello from $(hostname); sleep 1 & wait $!",
        deferrable=deferrable,
    )

    assert run.state() == "success"
    result = run.xcom("provision")
    assert result["execution_id"] == f"{dag_id}:{run.run_id}:provision:-1"
    assert [(u["index"], u["status"], u["exit_code"]) for u in result["units"]] == [
        (0, "succeeded", 0),
        (1, "succeeded", 0),
    ]
    pods = kube_env.pods_of(tenant)
    assert {u["resource_id"] for u in result["units"]} == {p.metadata.name for p in pods}
    assert {p.status.phase for p in pods} == {"Succeeded"}
    assert {p.spec.containers[0].image for p in pods} == {REAL_IMAGE}
    # The containers' own output, from the kubelet: each ran in its pod (hostname = pod name).
    assert [kube_env.log_of(p.metadata.name) for p in pods] == [
        f"hello from {p.metadata.name}\n" for p in pods
    ]
    store = open_state_store()
    assert store.get_tenant(tenant).status is TenantStatus.READY
    assert {e.status for e in store.list_resources(tenant_id=tenant)} == {ResourceStatus.SUCCEEDED}


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_wait_for_running_returns_once_every_pod_is_ready(airflow_env, kube_env, deferrable) -> None:
    tenant = f"k-running-{int(deferrable)}"
    run = _run(
        airflow_env,
        kube_env,
        f"kube_running_{int(deferrable)}",
        tenant_id=tenant,
        count=2,
        pod_template=_two_containers(kube_env.node, main=FOREVER, sidecar=f"sleep 0.5; {FOREVER}"),
        wait_for="running",
        deferrable=deferrable,
    )

    assert run.state() == "success"
    assert [u["status"] for u in run.xcom("provision")["units"]] == ["running", "running"]
    pods = kube_env.pods_of(tenant)
    assert [(p.status.phase, _condition(p, "Ready")) for p in pods] == [("Running", "True")] * 2
    assert {p.metadata.labels["app"] for p in pods} == {"two-containers"}, "the template's labels stay"


def test_a_running_pod_that_never_becomes_ready_is_not_running(airflow_env, kube_env) -> None:
    # The pod's phase is Running as soon as its containers start; its sidecar's readiness probe
    # always fails, so it is never Ready. Given as a V1Pod, the other form of pod_template.
    placement = kube_env.node.placement()
    command = sh_command(FOREVER)
    template = Code(
        "k8s.V1Pod(spec=k8s.V1PodSpec("
        f"node_selector={placement['nodeSelector']!r}, tolerations={placement['tolerations']!r}, containers=["
        f"k8s.V1Container(name='main', image={REAL_IMAGE!r}, command={command!r}), "
        f"k8s.V1Container(name='sidecar', image={REAL_IMAGE!r}, command={command!r}, "
        "readiness_probe=k8s.V1Probe(_exec=k8s.V1ExecAction(command=['false']), period_seconds=1))]))"
    )
    run = _run(
        airflow_env,
        kube_env,
        "kube_never_ready",
        tenant_id="k-never-ready",
        pod_template=template,
        wait_for="running",
        timeout=Code("timedelta(seconds=3)"),
    )

    assert run.state() == "failed"
    error = run.xcom("provision", key="compute_error")
    assert error["code"] == "OPERATION_TIMEOUT"
    assert [u["index"] for u in error["units"]["running"]] == [0]
    assert error["cleanup"]["action"] == "left_running"
    (pod,) = kube_env.pods_of("k-never-ready")
    assert (pod.status.phase, _condition(pod, "Ready")) == ("Running", "False")
    assert [c.name for c in pod.spec.containers] == ["main", "sidecar"]


# -- idempotency ---------------------------------------------------------------------------------


def test_retry_reuses_the_execution_id_and_launches_once(airflow_env, kube_env, proxied) -> None:
    # Every create reaches the API server, but no answer ever comes back: the first try gives
    # up with the pod created (its own retries meet a 409 they never hear either). The second
    # try can only succeed by adopting that pod: a create from it would be lost as well.
    proxied.add_rule(Reset(forward_first=True), method="POST", path=PODS)

    run = _run(airflow_env, kube_env, "kube_idem", tenant_id="k-idem", sh="sleep 1 & wait $!", retries=2)

    assert run.state() == "success"
    assert run.try_numbers()["provision"] == 2
    assert len(kube_env.pods_of("k-idem")) == 1, "the retry adopted the pod instead of creating again"
    assert proxied.count(method="POST", path=PODS) == HOOK_ATTEMPTS, "no create from the second try"
    operations = open_state_store().operations("k-idem")
    assert [op.attempt for op in operations] == [2, 1]
    assert len({op.execution_id for op in operations}) == 1


def test_worker_killed_after_the_create_leaves_exactly_one_pod(airflow_env, kube_env, proxied) -> None:
    source = kube_env.dag("kube_crash", tenant_id="k-crash", sh=FOREVER, wait_for="running")
    when = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
    child = airflow_env.run_dag_in_subprocess(source, "kube_crash", logical_date=when)
    proxied.after_forward(lambda info, status: child.kill(), method="POST", path=PODS)
    child.wait()
    assert child.popen.returncode == -signal.SIGKILL
    assert len(kube_env.pods_of("k-crash")) == 1  # created; the worker died before recording it

    proxied.reset()
    rerun = airflow_env.run_dag_in_subprocess(source, "kube_crash", logical_date=when)
    assert rerun.wait() == 0, rerun.log_text()
    assert rerun.record.state() == "success"
    assert len(kube_env.pods_of("k-crash")) == 1, "the next try adopted the pod of the killed one"
    assert proxied.count(method="POST", path=PODS) == 0


# -- partial launch -------------------------------------------------------------------------------


def test_partial_launch_rolls_back_by_default(airflow_env, kube_env) -> None:
    kube_env.set_quota(pods=2)
    run = _run(airflow_env, kube_env, "kube_rollback", tenant_id="k-rollback", count=3, sh=FOREVER)

    assert run.state() == "failed"
    error = run.xcom("provision", key="compute_error")
    assert (error["code"], error["classification"]) == ("PARTIAL_FAILURE", "non_retriable")
    units = error["units"]
    launched = units["pending"] + units["running"] + units["succeeded"]
    assert sorted(u["index"] for u in launched) == [0, 1]
    ((failed),) = units["failed"]
    assert (failed["index"], failed["error"]["code"]) == (2, "QUOTA_EXCEEDED")
    assert failed["error"]["root_cause"]["http_status"] == 403
    assert "exceeded quota: pods" in failed["error"]["root_cause"]["provider_message"]
    assert error["cleanup"]["action"] == "rolled_back"
    assert sorted(error["cleanup"]["resources"]) == sorted(u["resource_id"] for u in launched)
    kube_env.wait_until_stopped("k-rollback")
    ledger = open_state_store().list_resources(tenant_id="k-rollback")
    assert sorted(e.status.value for e in ledger) == ["failed", "stopped", "stopped"]


def test_a_rollback_stops_the_unit_whose_create_went_unanswered(airflow_env, kube_env, proxied) -> None:
    # The first create is answered; every attempt at the second reaches the API server but its
    # answer is lost. The pod exists all the same, and the hook gives up on it (and on the third,
    # never sent). The try must look for it: a rollback that stopped only the pods it heard of
    # would leave this one running, in no report and stopped by no one.
    proxied.add_rule(Delay(0.0), method="POST", path=PODS, times=1)
    proxied.add_rule(Reset(forward_first=True), method="POST", path=PODS, times=HOOK_ATTEMPTS)
    run = _run(airflow_env, kube_env, "kube_unheard", tenant_id="k-unheard", count=3, sh=FOREVER)

    assert run.state() == "failed"
    error = run.xcom("provision", key="compute_error")
    assert error["code"] == "PARTIAL_FAILURE"
    launched = error["units"]["pending"] + error["units"]["running"] + error["units"]["succeeded"]
    assert sorted(u["index"] for u in launched) == [0, 1]
    assert [u["index"] for u in error["units"]["failed"]] == [2]
    assert error["cleanup"]["action"] == "rolled_back"
    assert len(error["cleanup"]["resources"]) == 2
    kube_env.wait_until_stopped("k-unheard")
    ledger = {e.unit_index: e for e in open_state_store().list_resources(tenant_id="k-unheard")}
    assert (ledger[1].status, ledger[1].resource_id) == (
        ResourceStatus.STOPPED,
        error["cleanup"]["resources"][1],
    )


def test_a_rollback_stops_the_unit_whose_create_landed_though_its_retry_met_the_quota(
    airflow_env, kube_env, proxied
) -> None:
    # The quota admits two pods. The second create lands, but its answer is lost; the hook's
    # retry of it is then refused "exceeded quota" (the API server checks the quota before the
    # name, so no 409 says the pod is there). That refusal must not be believed: the pod runs,
    # and the rollback of the partial launch has to stop it with the first.
    kube_env.set_quota(pods=2)
    proxied.add_rule(Delay(0.0), method="POST", path=PODS, times=1)
    proxied.add_rule(Reset(forward_first=True), method="POST", path=PODS, times=1)
    run = _run(airflow_env, kube_env, "kube_quota_retry", tenant_id="k-quota-retry", count=3, sh=FOREVER)

    assert run.state() == "failed"
    error = run.xcom("provision", key="compute_error")
    assert error["code"] == "PARTIAL_FAILURE"
    launched = error["units"]["pending"] + error["units"]["running"] + error["units"]["succeeded"]
    assert sorted(u["index"] for u in launched) == [0, 1]
    assert [(u["index"], u["error"]["code"]) for u in error["units"]["failed"]] == [(2, "QUOTA_EXCEEDED")]
    assert error["cleanup"]["action"] == "rolled_back"
    kube_env.wait_until_stopped("k-quota-retry")
    ledger = {e.unit_index: e.status for e in open_state_store().list_resources(tenant_id="k-quota-retry")}
    assert ledger == {0: ResourceStatus.STOPPED, 1: ResourceStatus.STOPPED, 2: ResourceStatus.FAILED}


def test_partial_launch_with_retry_failed_relaunches_only_the_failed_unit(
    airflow_env, kube_env, proxied
) -> None:
    kube_env.set_quota(pods=2)

    def raise_the_quota(info: RequestInfo, status: int) -> None:
        # An operator raises the quota right after it refused the third pod; the operator's
        # next request waits until the quota controller made it effective.
        if status == 403 and not raised:
            raised.append(status)
            kube_env.set_quota(pods=3)

    raised: list[int] = []
    proxied.after_forward(raise_the_quota, method="POST", path=PODS, times=None)
    run = _run(
        airflow_env,
        kube_env,
        "kube_retry_failed",
        tenant_id="k-retry-failed",
        count=3,
        sh="sleep 2 & wait $!",
        on_partial_failure="retry_failed",
        # QUOTA_EXCEEDED is not retriable by default; this workflow retries its partial failures.
        retry_policy=Code(
            "ComputeRetryPolicy(max_attempts=2, initial_delay=timedelta(0),"
            " rules={'PARTIAL_FAILURE': Retry()})"
        ),
    )

    assert run.state() == "success"
    assert run.try_numbers()["provision"] == 2
    assert raised == [403]
    pods = kube_env.pods_of("k-retry-failed")
    by_unit = {
        int(p.metadata.labels[LABEL_UNIT_INDEX]): int(p.metadata.labels[LABEL_GENERATION]) for p in pods
    }
    assert by_unit == {0: 1, 1: 1, 2: 2}, "two kept from try 1, one relaunched in try 2"
    assert proxied.count(method="POST", path=PODS) == 4


# -- timeouts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_timeout_leaves_the_pod_running_and_the_next_try_reattaches(
    airflow_env, kube_env, deferrable
) -> None:
    # The pod runs 4 s: past the first try's 2 s, within the second try's 6 s.
    tenant = f"k-timeout-{int(deferrable)}"
    run = _run(
        airflow_env,
        kube_env,
        f"kube_timeout_{int(deferrable)}",
        tenant_id=tenant,
        sh="sleep 4 & wait $!",
        timeout=Code("timedelta(seconds=2)"),
        timeout_factor=3.0,
        retries=1,
        deferrable=deferrable,
    )

    assert run.state() == "success"
    assert run.try_numbers()["provision"] == 2
    (pod,) = kube_env.pods_of(tenant)
    assert pod.status.phase == "Succeeded", "the second try reattached to the pod instead of creating one"
    store = open_state_store()
    operations = store.operations(tenant)
    assert operations[1].error is not None
    assert operations[1].error.code.value == "OPERATION_TIMEOUT"
    assert operations[1].error.cleanup.action == "left_running"
    assert operations[1].error.cleanup.resources == [pod.metadata.name]
    assert store.timeouts_so_far(tenant, operations[0].execution_id) == 1
    assert store.get_tenant(tenant).status is TenantStatus.READY


def test_timeout_with_no_retry_fails_retriable_and_keeps_the_pod(airflow_env, kube_env) -> None:
    run = _run(
        airflow_env,
        kube_env,
        "kube_timeout_final",
        tenant_id="k-timeout-final",
        sh=FOREVER,
        timeout=Code("timedelta(seconds=1)"),
    )

    assert run.state() == "failed"
    error = run.xcom("provision", key="compute_error")
    assert (error["code"], error["classification"]) == ("OPERATION_TIMEOUT", "retriable")
    # Left running: the pod (which may still have been starting when the try gave up) runs.
    wait_for(
        lambda: [p.status.phase for p in kube_env.live_pods_of("k-timeout-final")] == ["Running"],
        30,
        "the pod left behind to run",
    )
    tenant = open_state_store().get_tenant("k-timeout-final")
    assert tenant.status is TenantStatus.RETRY_PENDING  # retriable, given up: valid for a retry


# -- failed and stuck pods ---------------------------------------------------------------------------

#: far more than the memory limit below: ``tail`` keeps all of a newline-free stream in memory
MEMORY_HOG = "echo filling memory; exec tail /dev/zero"


def _assert_failed_pod(
    kube_env: KubeEnv, run: Any, tenant: str, code: str, exit_code: int, reason: str
) -> Any:
    assert run.state() == "failed"
    error = run.xcom("provision", key="compute_error")
    assert error["code"] == code
    assert error["root_cause"]["exit_code"] == exit_code
    assert error["root_cause"]["reason"] == reason
    (pod,) = kube_env.pods_of(tenant)
    assert pod.status.phase == "Failed"
    assert error["root_cause"]["resource_id"] == f"{kube_env.namespace}/{pod.metadata.name}"
    assert (error["tenant_id"], error["operation"], error["provider"]) == (tenant, "provision", "kubernetes")
    expected = (
        TenantStatus.RETRY_PENDING
        if error["classification"] == "retriable"
        else TenantStatus.NEEDS_INVESTIGATION
    )
    assert open_state_store().get_tenant(tenant).status is expected
    return pod


@pytest.mark.parametrize(
    ("sh", "limits", "code", "exit_code", "reason", "printed"),
    [
        ("echo giving up; exit 1", {}, "CONTAINER_FAILED", 1, "Error", "giving up\n"),
        (MEMORY_HOG, {"memory": "32Mi"}, "OUT_OF_MEMORY", 137, "OOMKilled", "filling memory\n"),
    ],
    ids=["exit-1", "oom-killed"],
)
def test_a_failed_pod_becomes_its_code_with_exit_code_and_reason(
    airflow_env, kube_env, sh, limits, code, exit_code, reason, printed
) -> None:
    # Real containers: the shell's own exit code; the memory cgroup's kill at the limit (137).
    tenant = f"k-failed-{code.lower().replace('_', '-')}"
    resources = {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": limits}
    run = _run(
        airflow_env,
        kube_env,
        f"kube_failed_{code.lower()}",
        tenant_id=tenant,
        sh=sh,
        container_resources=resources,
    )

    pod = _assert_failed_pod(kube_env, run, tenant, code, exit_code, reason)
    assert kube_env.log_of(pod.metadata.name) == printed


def test_an_evicted_pod_is_an_infrastructure_interruption(airflow_env, kube_env) -> None:
    # Simulated (node simulator): a real eviction needs the node short of memory or disk, which
    # this shared machine must not be.
    tenant = "k-failed-infrastructure-interrupted"
    run = _run(airflow_env, kube_env, "kube_failed_evicted", tenant_id=tenant, script="run:1s,evict")

    _assert_failed_pod(kube_env, run, tenant, "INFRASTRUCTURE_INTERRUPTED", 137, "Evicted")


def test_a_pod_past_its_active_deadline_is_stopped_by_the_kubelet(airflow_env, kube_env) -> None:
    template = {"spec": {"containers": [{"name": "main"}], "activeDeadlineSeconds": 2}}
    run = _run(
        airflow_env,
        kube_env,
        "kube_deadline",
        tenant_id="k-deadline",
        sh=f"echo started; {FOREVER}",
        pod_template=template,
    )

    assert run.state() == "failed"
    error = run.xcom("provision", key="compute_error")
    assert error["code"] == "DEADLINE_EXCEEDED"
    assert error["root_cause"]["reason"] == "DeadlineExceeded"
    assert "longer than the specified deadline" in error["root_cause"]["provider_message"]
    (pod,) = kube_env.pods_of("k-deadline")
    assert (pod.status.phase, pod.status.reason) == ("Failed", "DeadlineExceeded")
    assert kube_env.log_of(pod.metadata.name) == "started\n", "it ran before the kubelet stopped it"


MISSING_IMAGE = "compute-test.invalid/not-built:1"


@pytest.mark.parametrize(
    ("pod", "code", "reason", "says"),
    [
        # No registry is reachable from here, and .invalid never resolves: the real containerd
        # answer is a failed lookup, which is a pull failure (retriable), not "not found".
        ({"image": MISSING_IMAGE}, "IMAGE_PULL_FAILED", "ErrImagePull", "compute-test.invalid"),
        (
            {"container_resources": {"requests": {"cpu": "64", "memory": "32Mi"}}},
            "INSUFFICIENT_CAPACITY",
            "Unschedulable",
            "Insufficient cpu",
        ),
        (
            {
                "env_vars": [
                    {"name": "TOKEN", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "token"}}}
                ],
            },
            "INVALID_CONFIGURATION",
            "CreateContainerConfigError",
            "couldn't find key token in ConfigMap",
        ),
    ],
    ids=["image-not-there", "unschedulable", "config-error"],
)
def test_a_pod_stuck_pending_fails_after_the_grace_period_and_is_deleted(
    airflow_env, kube_env, pod, code, reason, says
) -> None:
    # The try's timeout is far away: only the one second grace period can end it this soon.
    kube_env.core.create_namespaced_config_map(
        kube_env.namespace, {"metadata": {"name": "settings"}, "data": {"other": "x"}}
    )
    tenant = f"k-stuck-{code.lower().replace('_', '-')}"
    run = _run(
        airflow_env,
        kube_env,
        f"kube_stuck_{code.lower()}",
        tenant_id=tenant,
        sh="echo never printed",
        timeout=Code("timedelta(minutes=5)"),
        execution_timeout=Code("timedelta(seconds=60)"),
        **pod,
    )

    assert run.state() == "failed"
    error = run.xcom("provision", key="compute_error")
    assert error["code"] == code
    cause = error["root_cause"]
    assert cause["reason"] == reason
    assert says in cause["provider_message"]
    assert error["cleanup"]["action"] == "rolled_back"
    assert [f"{kube_env.namespace}/{name}" for name in error["cleanup"]["resources"]] == [
        cause["resource_id"]
    ]
    kube_env.wait_until_stopped(tenant)
    (entry,) = open_state_store().list_resources(tenant_id=tenant)
    assert entry.status is ResourceStatus.STOPPED


def test_a_pod_stuck_for_less_than_the_grace_period_is_not_a_failure(airflow_env, kube_env) -> None:
    # The image is not on the node when the pod starts: a real ErrImagePull. Then it arrives (put
    # into the node's containerd, as a registry coming back would deliver it) and the kubelet's
    # next attempt, after its back-off, runs the container.
    late = f"compute-test.invalid/late-{secrets.token_hex(3)}:1"
    tenant = "k-stuck-briefly"

    def pull_failed() -> bool:
        statuses = [s for p in kube_env.pods_of(tenant) for s in p.status.container_statuses or []]
        return any(s.state.waiting and s.state.waiting.reason == "ErrImagePull" for s in statuses)

    def deliver_the_image() -> None:
        wait_for(pull_failed, 60, "the first pull to fail")
        kube_env.node.ctr("images", "tag", REAL_IMAGE, late)

    delivery = threading.Thread(target=deliver_the_image, daemon=True)
    delivery.start()
    run = _run(
        airflow_env,
        kube_env,
        "kube_stuck_briefly",
        tenant_id=tenant,
        image=late,
        sh="echo arrived",
        pending_grace_period=Code("timedelta(seconds=60)"),
    )
    delivery.join(timeout=5)

    assert run.state() == "success"
    assert run.try_numbers()["provision"] == 1
    (pod,) = kube_env.pods_of(tenant)
    assert kube_env.log_of(pod.metadata.name) == "arrived\n"


# -- API errors on the wire -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "times"),
    [
        (kube_throttle(retry_after=0), 3 * HOOK_ATTEMPTS - 1),
        (kube_unavailable(), HOOK_ATTEMPTS + 1),
    ],
    ids=["429", "503"],
)
@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_throttling_and_5xx_while_polling_do_not_fail_the_task(
    airflow_env, kube_env, proxied, fault, times, deferrable
) -> None:
    # From the first create on, pod lists fail more often in a row than the hook retries one
    # call: some polls fail for good, and the operator polls again instead of failing.
    def fault_the_polls(info: RequestInfo, status: int) -> None:
        proxied.add_rule(fault, method="GET", path=PODS, times=times)

    proxied.after_forward(fault_the_polls, method="POST", path=PODS)

    run = _run(
        airflow_env,
        kube_env,
        f"kube_faulted_polls_{int(deferrable)}",
        tenant_id=f"k-faulted-polls-{int(deferrable)}",
        sh="sleep 2 & wait $!",
        deferrable=deferrable,
    )

    assert run.state() == "success"
    assert run.try_numbers()["provision"] == 1
    assert proxied.count(method="GET", path=PODS, faulted=True) == times


def test_rbac_forbidden_at_launch_fails_fast(
    airflow_env, kube_env, fault_proxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The connection's user may read pods in the namespace (so the reconcile before launch works)
    # but not create them: RBAC refuses the create. The proxy injects nothing; it counts.
    cluster = kube_env.cluster
    cluster.grant(kube_env.namespace, ["get", "list", "watch"])
    proxy = fault_proxy(cluster.server)
    restricted = cluster.kubeconfig_for(RESTRICTED_USER, server=proxy.url)
    monkeypatch.setenv(AIRFLOW_CONN_ENV, kubernetes_connection_json(restricted, kube_env.namespace))

    run = _run(airflow_env, kube_env, "kube_forbidden", tenant_id="k-forbidden", count=2, retries=3)

    assert run.state() == "failed"
    assert run.try_numbers()["provision"] == 1, "manual intervention: no retry although retries=3"
    error = run.xcom("provision", key="compute_error")
    assert (error["code"], error["classification"]) == ("PERMISSION_DENIED", "requires_manual_intervention")
    assert error["root_cause"]["http_status"] == 403
    assert error["root_cause"]["provider_message"] == (
        f'pods is forbidden: User "{RESTRICTED_USER}" cannot create resource "pods" in API group "" '
        f'in the namespace "{kube_env.namespace}"'
    )
    assert re.fullmatch(r"[0-9a-f-]{36}", error["root_cause"]["request_id"] or ""), "the Audit-Id header"
    assert [u["index"] for u in error["units"]["failed"]] == [0, 1], "every unit refused with the answer"
    assert proxy.count(method="POST", path=PODS) == 1, "one create: neither retried nor repeated per unit"
    assert proxy.count(method="POST", path=PODS, faulted=True) == 0
    assert kube_env.pods_of("k-forbidden") == []
    assert open_state_store().get_tenant("k-forbidden").status is TenantStatus.NEEDS_INVESTIGATION


@pytest.mark.parametrize("given_as", ["argument", "pod_template"])
def test_missing_service_account_fails_fast_as_not_found(airflow_env, kube_env, given_as) -> None:
    # The ServiceAccount admission plugin refuses a pod naming an account the namespace does not
    # have with a 403, not a 404: it is a missing resource, not a permission problem.
    tenant = f"k-no-sa-{given_as.replace('_', '-')}"
    if given_as == "argument":
        kwargs: dict[str, Any] = {"service_account_name": "builder"}
    else:
        template = _two_containers(kube_env.node, main=FOREVER, sidecar=FOREVER)
        template["spec"]["serviceAccountName"] = "builder"
        kwargs = {"pod_template": template}

    run = _run(airflow_env, kube_env, f"kube_no_sa_{given_as}", tenant_id=tenant, retries=3, **kwargs)

    assert run.state() == "failed"
    assert run.try_numbers()["provision"] == 1
    error = run.xcom("provision", key="compute_error")
    assert (error["code"], error["classification"]) == ("RESOURCE_NOT_FOUND", "non_retriable")
    assert error["root_cause"]["http_status"] == 403
    ((failed,),) = [error["units"]["failed"]]
    pod_name = failed["error"]["root_cause"]["resource_id"]
    assert re.fullmatch(r"cx[0-9a-f]{32}-0-g1", pod_name)
    assert failed["error"]["root_cause"]["provider_message"] == (
        f'pods "{pod_name}" is forbidden: error looking up service account '
        f'{kube_env.namespace}/builder: serviceaccount "builder" not found'
    )
    assert kube_env.pods_of(tenant) == []
    assert open_state_store().get_tenant(tenant).status is TenantStatus.NEEDS_INVESTIGATION


def test_an_invalid_pod_is_refused_with_422_and_fails_fast(airflow_env, kube_env) -> None:
    run = _run(
        airflow_env,
        kube_env,
        "kube_invalid",
        tenant_id="k-invalid",
        count=2,
        labels={"app": "not a valid label value!"},
        retries=3,
    )

    assert run.state() == "failed"
    assert run.try_numbers()["provision"] == 1, "non-retriable: no retry although retries=3"
    error = run.xcom("provision", key="compute_error")
    assert (error["code"], error["classification"]) == ("INVALID_CONFIGURATION", "non_retriable")
    assert [u["error"]["root_cause"]["http_status"] for u in error["units"]["failed"]] == [422, 422]
    assert "metadata.labels" in error["root_cause"]["provider_message"]
    assert kube_env.pods_of("k-invalid") == []
    assert open_state_store().get_tenant("k-invalid").status is TenantStatus.NEEDS_INVESTIGATION


def test_invalid_argument_fails_before_any_call_and_holds_the_tenant(airflow_env, kube_env, proxied) -> None:
    # Requirement 2.2: a non-retriable error, invalid configuration included, marks the tenant
    # for manual investigation, also when our own validation caught it before any provider call.
    run = _run(
        airflow_env,
        kube_env,
        "kube_bad_namespace",
        tenant_id="k-bad-namespace",
        namespace="{{ 'Not_A_Namespace' }}",
        retries=2,
    )

    assert run.state() == "failed"
    assert run.try_numbers()["provision"] == 1
    error = run.xcom("provision", key="compute_error")
    assert error["code"] == "INVALID_CONFIGURATION"
    assert "'namespace'" in error["message"]
    assert proxied.counts.total == 0
    tenant = open_state_store().get_tenant("k-bad-namespace")
    assert tenant is not None
    assert tenant.status is TenantStatus.NEEDS_INVESTIGATION
    assert tenant.note is not None
    assert tenant.note.startswith("INVALID_CONFIGURATION: ")
    assert open_state_store().operations("k-bad-namespace") == [], "no try began"


# -- logs ------------------------------------------------------------------------------------------

CANARY = "canary-5d1e8b2a-s3cr3t"


def _records(text: str, event: str) -> list[str]:
    return [line for line in text.splitlines() if event in line]


def test_failure_logs_carry_context_and_raw_responses_without_secrets(airflow_env, kube_env, proxied) -> None:
    # Try 1: every create throttled (a retry follows). Try 2: the pod is created and exits 1
    # (final). Both the API error and the failed pod's JSON reach the debug log, redacted.
    proxied.add_rule(kube_throttle(retry_after=0), method="POST", path=PODS, times=HOOK_ATTEMPTS)
    source = kube_env.dag(
        "kube_logs",
        tenant_id="k-logs",
        retries=1,
        sh="exit 1",
        env_vars={"DB_PASSWORD": CANARY},
    )
    debug_ours = "airflow_compute_provider=DEBUG airflow.task.hooks.airflow_compute_provider=DEBUG"
    child = airflow_env.run_dag_in_subprocess(
        source, "kube_logs", env={"AIRFLOW__LOGGING__NAMESPACE_LEVELS": debug_ours}
    )
    child.wait()
    assert child.record.state() == "failed"
    out = child.log_text()

    retry = _records(out, "compute operation failed, retry follows")
    final = [line for line in _records(out, "compute operation failed") if "retry follows" not in line]
    assert len(retry) == 1
    assert "warning" in retry[0].split("]")[0]
    assert len(final) == 1
    assert "error" in final[0].split("]")[0]
    assert "code=PROVIDER_THROTTLED" in retry[0]
    assert "code=CONTAINER_FAILED" in final[0]
    for line in retry + final:
        for field in (
            "tenant_id=k-logs",
            "operation=provision",
            "execution_id=kube_logs:",
            "provider=kubernetes",
        ):
            assert field in line, f"{field} missing from: {line}"
    api = _records(out, "Kubernetes API error response")
    assert api
    assert all("debug" in line.split("]")[0] for line in api)
    assert "TooManyRequests" in api[0]
    assert "Audit-Id" in api[0]
    pods = _records(out, "Kubernetes pod that failed")
    assert pods
    assert all("debug" in line.split("]")[0] for line in pods)
    assert "DB_PASSWORD" in pods[0], "the pod JSON, env names included"
    assert CANARY not in out, "a secret from the launch request reached the log"
