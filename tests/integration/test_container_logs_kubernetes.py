"""Container output of pods in the task log, and a failed pod's last lines in its error.

Real Airflow (``dag.test()`` in a child process, whose output is the task log read back here),
the real API server and a real node (containerd and a kubelet: ``tests/harness/realnode.py``)
whose containers really print: the operator reads them through the API server's
``pods/{name}/log``, which the API server fetches from the kubelet. Faults of the log API are
injected on the wire with the fault proxy (cheaper than a scripted kubelet, and the same path:
the operator's client sees the API server's answer or the proxy's); the node simulator is not
used for logs.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.harness.proxy import FaultProxy
from tests.harness.proxy_faults import Delay, kube_error
from tests.harness.realnode import RealNode
from tests.integration.kubernetes_dags import REAL_IMAGE, Code, KubeEnv, on_node, sh_command

pytestmark = [pytest.mark.kube, pytest.mark.airflow]

CANARY = "canary-4b1d77e2-s3cr3t"
#: what the container prints (the fourth line echoes the secret it was given)
SCRIPT = (
    "echo starting provisioning; echo step 1 of 3; echo step 2 of 3; "
    'echo "connecting with $DB_PASSWORD"; echo all done'
)
PRINTED = ["starting provisioning", "step 1 of 3", "step 2 of 3", "connecting with ***", "all done"]
#: the log path of a pod (the fault proxy's rules match on it)
LOG_PATH = r"/namespaces/[^/]+/pods/[^/]+/log"


@pytest.fixture
def kube_env(kube_env: KubeEnv, real_node: RealNode) -> KubeEnv:
    """The harness's, with its pods on the real node (containerd and a kubelet: real logs)."""
    kube_env.node = real_node
    return kube_env


def _run(airflow_env: Any, kube_env: KubeEnv, dag_id: str, **kwargs: Any) -> tuple[Any, str]:
    kwargs.setdefault("env_vars", {"DB_PASSWORD": CANARY})
    child = airflow_env.run_dag_in_subprocess(kube_env.dag(dag_id, **kwargs), dag_id)
    child.wait(timeout=240)
    return child.record, child.log_text()


def _printed(out: str, unit: str = "0") -> list[str]:
    """The container lines the task log shows for ``unit``, in order (the console renderer
    pads the event and follows it with ``[logger] loc=...``)."""
    found = re.findall(rf"\[unit {re.escape(unit)}\] (.*) \[airflow\.task\.", out)
    return [line.rstrip() for line in found]


def _split_at_the_retry(out: str) -> tuple[str, str]:
    """The task log of try 1 and of what follows (Airflow's retry callback logs the failure)."""
    at = out.index("compute operation failed, retry follows")
    return out[:at], out[at:]


def _warnings(out: str) -> list[str]:
    return [line for line in out.splitlines() if "container logs:" in line]


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_success_prints_every_line_once_with_secrets_masked(airflow_env, kube_env, deferrable) -> None:
    record, out = _run(
        airflow_env, kube_env, f"kube_logs_ok_{int(deferrable)}", tenant_id=f"kl-ok-{int(deferrable)}",
        sh=SCRIPT, deferrable=deferrable,
    )  # fmt: skip

    assert record.state() == "success"
    assert _printed(out) == PRINTED
    assert CANARY not in out


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_a_failed_pod_carries_its_last_lines_in_its_error(airflow_env, kube_env, deferrable) -> None:
    record, out = _run(
        airflow_env, kube_env, f"kube_logs_failed_{int(deferrable)}",
        tenant_id=f"kl-failed-{int(deferrable)}", sh=f"{SCRIPT}; exit 3", deferrable=deferrable,
        log_lines_on_failure=3,
    )  # fmt: skip

    assert record.state() == "failed"
    error = record.xcom("provision", key="compute_error")
    assert (error["code"], error["root_cause"]["exit_code"]) == ("CONTAINER_FAILED", 3)
    assert error["output"]["container"] == "main"
    assert error["output"]["lines"] == PRINTED[-3:]
    assert _printed(out) == PRINTED
    assert CANARY not in out
    assert CANARY not in str(error)


@pytest.mark.parametrize("deferrable", [False, True], ids=["blocking", "deferrable"])
def test_a_reattaching_try_prints_no_line_twice(airflow_env, kube_env, deferrable) -> None:
    # A line every 0.2 s for 6 s: try 1 (3 s) times out having printed some, try 2 reattaches
    # to the same pod and prints the rest, none of them again, none left out.
    ticks = 'i=0; while [ $i -lt 30 ]; do echo "tick $i"; i=$((i+1)); sleep 0.2; done'
    record, out = _run(
        airflow_env, kube_env, f"kube_logs_reattach_{int(deferrable)}",
        tenant_id=f"kl-reattach-{int(deferrable)}", sh=ticks, deferrable=deferrable,
        timeout=Code("timedelta(seconds=3)"), timeout_factor=20.0, retries=1, log_fetch_interval=0.5,
    )  # fmt: skip

    assert record.state() == "success"
    assert record.try_numbers()["provision"] == 2
    assert len(kube_env.pods_of(f"kl-reattach-{int(deferrable)}")) == 1, "the second try reattached"
    assert _printed(out) == [f"tick {i}" for i in range(30)]
    first, then = _split_at_the_retry(out)
    assert _printed(first), "try 1 printed some lines itself"
    assert _printed(then), "try 2 printed the rest"


def test_several_containers_are_prefixed_with_their_names(airflow_env, kube_env) -> None:
    assert kube_env.node is not None
    resources = {"requests": {"cpu": "20m", "memory": "16Mi"}}
    pod = on_node(
        {
            "spec": {
                "containers": [
                    {"name": name, "image": REAL_IMAGE, "command": sh_command(f"echo from {name}"),
                     "resources": resources}
                    for name in ("main", "sidecar")
                ]
            }
        },
        kube_env.node,
    )  # fmt: skip
    record, out = _run(
        airflow_env, kube_env, "kube_logs_two", tenant_id="kl-two", pod_template=pod, container_logs=True
    )

    assert record.state() == "success"
    assert _printed(out, "0/main") == ["from main"]
    assert _printed(out, "0/sidecar") == ["from sidecar"]


def test_enormous_and_binary_lines_are_cut_and_marked(airflow_env, kube_env) -> None:
    huge = "head -c 100000 /dev/zero | tr '\\000' x; echo"
    binary = "head -c 64 /dev/urandom | tr -d '\\n'; echo"
    record, out = _run(
        airflow_env, kube_env, "kube_logs_odd", tenant_id="kl-odd",
        sh=f"{huge}; {binary}; echo plain; exit 1", log_lines_on_failure=3,
    )  # fmt: skip

    assert record.state() == "failed"
    first, second, third = _printed(out)
    assert first == "x" * 2000 + " [... line cut at 2000 characters]"
    assert second.startswith("[binary output:")
    assert third == "plain"
    lines = record.xcom("provision", key="compute_error")["output"]["lines"]
    assert lines[0] == "x" * 500 + " [... line cut at 500 characters]"
    assert lines[1:] == [second, "plain"]


def test_a_pod_that_never_started_gives_its_events_and_a_warning(airflow_env, kube_env) -> None:
    record, out = _run(
        airflow_env, kube_env, "kube_logs_never", tenant_id="kl-never", sh="echo never printed",
        image="compute-test.invalid/not-built:1", timeout=Code("timedelta(minutes=5)"),
        execution_timeout=Code("timedelta(seconds=60)"),
    )  # fmt: skip

    assert record.state() == "failed"
    error = record.xcom("provision", key="compute_error")
    assert error["code"] == "IMAGE_PULL_FAILED"
    assert error["output"]["lines"] == []
    assert any("compute-test.invalid" in event for event in error["output"]["events"])
    assert any("cannot read the log of container main" in w for w in _warnings(out))
    assert _printed(out) == []


@pytest.mark.parametrize(
    "fault",
    [
        kube_error(403, message='pods "x" is forbidden: cannot get resource "pods/log"'),
        kube_error(503),
        # slower than the reader's read timeout: the read gives up and reading stops for the try
        Delay(12.0),
    ],
    ids=["forbidden", "unavailable", "slow"],
)
def test_a_refused_or_faulted_log_api_is_a_warning(
    airflow_env, kube_env, fault_proxy: Callable[[str], FaultProxy], fault, request
) -> None:
    case = request.node.callspec.id
    proxy = fault_proxy(kube_env.cluster.server)
    kube_env.route_through(proxy.url)
    proxy.add_rule(fault, path=LOG_PATH)
    record, out = _run(
        airflow_env, kube_env, f"kube_logs_{case}", tenant_id=f"kl-{case}", sh=f"{SCRIPT}; exit 2"
    )

    assert record.state() == "failed"
    error = record.xcom("provision", key="compute_error")
    assert (error["code"], error["root_cause"]["exit_code"]) == ("CONTAINER_FAILED", 2)
    assert "output" not in error or error["output"]["lines"] == []
    assert _warnings(out)
    if case == "slow":
        assert any("the logs API is slow" in w for w in _warnings(out))
    assert _printed(out) == []


def test_a_deleted_pod_is_a_warning_and_the_outcome_is_the_computes(
    airflow_env, kube_env, fault_proxy
) -> None:
    # The pod is deleted by someone else while it runs: CANCELLED (or vanished), and its log is
    # gone with it (404 from the API server), which is a warning.
    proxy = fault_proxy(kube_env.cluster.server)
    kube_env.route_through(proxy.url)

    def delete_it(info: Any, status: int) -> None:
        for pod in kube_env.live_pods_of("kl-deleted"):
            kube_env.core.delete_namespaced_pod(pod.metadata.name, kube_env.namespace, grace_period_seconds=0)

    proxy.after_forward(delete_it, path=LOG_PATH, times=1)
    record, out = _run(
        airflow_env, kube_env, "kube_logs_deleted", tenant_id="kl-deleted",
        sh="echo about to be deleted; while :; do sleep 1 & wait $!; done", log_fetch_interval=0.2,
    )  # fmt: skip

    assert record.state() == "failed"
    error = record.xcom("provision", key="compute_error")
    assert error["code"] in ("CANCELLED", "CONTAINER_FAILED")
    assert any("no longer exists (404)" in w for w in _warnings(out))
