"""DAG files and the per-test cluster view for the Kubernetes end-to-end tests.

``kube_dag(dag_id, namespace=..., script=..., **operator_kwargs)`` gives the source of a DAG
file with one ``KubernetesComputeOperator`` (task id ``provision``) whose keyword arguments are
the given values; ``Code("...")`` (from ``ecs_dags``) inserts an expression verbatim (``timedelta(...)``, a
retry policy, a ``k8s.V1Pod(...)`` from ``kubernetes.client.models``). ``script``
is the node simulator's pod script (``tests/harness/nodesim.py``), set as the pod annotation
``sim.compute.test/script``. Image, command, small resource requests, a fast poll and a one
second ``pending_grace_period`` are the defaults, so a test names only what it is about.

``KubeEnv.dag(dag_id, sh="...")`` is a pod for the real node instead (``tests/harness/realnode.py``):
the container runs ``sh -c`` with that shell text in the busybox image built from Debian's
``busybox-static``, and the pod carries the node's nodeSelector and toleration (added to a
``pod_template`` given as a dict too). ``sh_command(text)`` is that command: the shell exits on
SIGTERM (``exit 143``), which a shell that is PID 1 does not do by itself, so that deleting a
pod takes a moment and not its whole grace period; a long ``sleep`` in the text should run as
``sleep N & wait $!`` for the same reason (``FOREVER`` does).

``KubeEnv`` is one test's namespace seen from the test side: ``pods_of(tenant)`` reads the pods
straight from the API server (never through a fault proxy), ``route_through(url)`` points the
Airflow connection ``kubernetes_default`` at a fault proxy, ``set_quota`` / ``wait_until_gone``
change and observe the namespace.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_compute_provider.hooks.kubernetes_pods import LABEL_TENANT_ID, label_value
from tests.harness.kube import (
    AIRFLOW_CONN_ENV,
    kubernetes_connection_json,
    read_log,
    wait_for,
    wait_for_quota,
)
from tests.harness.kubecluster import KubeCluster
from tests.harness.nodesim import SCRIPT_ANNOTATION
from tests.harness.realnode import IMAGE as REAL_IMAGE
from tests.harness.realnode import RealNode
from tests.integration.ecs_dags import Code

IMAGE = "busybox:1.36"
#: shell text for a container that runs until it is stopped
FOREVER = "while :; do sleep 1 & wait $!; done"


def sh_command(text: str) -> list[str]:
    """``sh -c TEXT`` for a real container, exiting at once on SIGTERM."""
    return ["sh", "-c", f"trap 'exit 143' TERM; {text}"]


def on_node(pod: dict[str, Any], node: RealNode) -> dict[str, Any]:
    """The pod (API JSON) with the real node's nodeSelector and toleration in its spec."""
    spec = pod.setdefault("spec", {})
    placement = node.placement()
    spec["nodeSelector"] = {**(spec.get("nodeSelector") or {}), **placement["nodeSelector"]}
    spec["tolerations"] = [*(spec.get("tolerations") or []), *placement["tolerations"]]
    return pod


_TEMPLATE = """\
from datetime import datetime, timedelta

from airflow.sdk import DAG
from kubernetes.client import models as k8s

from airflow_compute_provider.operators.kubernetes import KubernetesComputeOperator
from airflow_compute_provider.policy import Abort, ComputeRetryPolicy, Retry

with DAG({dag_id!r}, start_date=datetime(2026, 1, 1), schedule=None, catchup=False) as dag:
    KubernetesComputeOperator(
        task_id="provision",
{arguments}
    )
"""


def kube_dag(dag_id: str, *, namespace: str, script: str | None = None, **kwargs: Any) -> str:
    arguments: dict[str, Any] = {
        "operation": "provision",
        "namespace": namespace,
        "poll_interval": 0.2,
        "pending_grace_period": Code("timedelta(seconds=1)"),
        "retry_delay": Code("timedelta(seconds=0)"),
    }
    if "pod_template" not in kwargs:
        arguments.update(
            image=IMAGE,
            cmds=["sh", "-c", "true"],
            container_resources={"requests": {"cpu": "50m", "memory": "32Mi"}},
        )
    if script is not None:
        arguments["annotations"] = {SCRIPT_ANNOTATION: script}
    arguments.update(kwargs)
    lines = "\n".join(f"        {name}={value!r}," for name, value in arguments.items())
    return _TEMPLATE.format(dag_id=dag_id, arguments=lines)


class KubeEnv:
    """One test's namespace: what the product's connection points at, and the test's own view."""

    def __init__(
        self,
        cluster: KubeCluster,
        namespace: str,
        core: Any,
        monkeypatch: pytest.MonkeyPatch,
        tmp: Path,
        node: RealNode | None = None,
    ) -> None:
        self.cluster = cluster
        self.node = node
        self.namespace = namespace
        self.core = core
        self._monkeypatch = monkeypatch
        self._tmp = tmp
        self.server = cluster.server
        monkeypatch.setenv(AIRFLOW_CONN_ENV, kubernetes_connection_json(cluster.kubeconfig, namespace))

    def route_through(self, url: str) -> None:
        """Point the Airflow connection at ``url`` (a fault proxy speaking plain HTTP)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "proxy", "cluster": {"server": url}}],
            "users": [{"name": "admin", "user": {"token": self.cluster.token}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "admin"}}],
            "current-context": "proxy",
        }
        path = self._tmp / "proxied-kubeconfig"
        path.write_text(json.dumps(config))
        self.server = url
        self._monkeypatch.setenv(AIRFLOW_CONN_ENV, kubernetes_connection_json(path, self.namespace))

    def dag(self, dag_id: str, *, sh: str | None = None, **kwargs: Any) -> str:
        """A DAG file's source; with ``sh``, its pod runs that shell text on the real node."""
        kwargs.setdefault("namespace", self.namespace)
        if sh is not None:
            if self.node is None:
                raise RuntimeError("this KubeEnv has no real node: pass one to run a pod for real")
            kwargs.setdefault("image", REAL_IMAGE)
            kwargs.setdefault("cmds", sh_command(sh))
            kwargs.setdefault("container_resources", {"requests": {"cpu": "50m", "memory": "32Mi"}})
            template = kwargs.get("pod_template") or {"spec": {"containers": [{"name": "main"}]}}
            kwargs["pod_template"] = on_node(template, self.node)
        return kube_dag(dag_id, **kwargs)

    def log_of(self, pod_name: str, container: str | None = None) -> str:
        """The container's own output, read through the API server from the kubelet."""
        return read_log(self.core, self.namespace, pod_name, container)

    def pods_of(self, tenant_id: str) -> list[Any]:
        """Every pod of the tenant that still exists (deleted pods are gone, unlike ECS tasks)."""
        pods = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"{LABEL_TENANT_ID}={label_value(tenant_id)}"
        ).items
        return sorted(pods, key=lambda p: p.metadata.name)

    def live_pods_of(self, tenant_id: str) -> list[Any]:
        """The tenant's pods that are not being deleted."""
        return [p for p in self.pods_of(tenant_id) if p.metadata.deletion_timestamp is None]

    def wait_until_gone(self, tenant_id: str, timeout: float = 30.0) -> None:
        wait_for(lambda: not self.pods_of(tenant_id), timeout, f"the pods of {tenant_id} to be deleted")

    def wait_until_stopped(self, tenant_id: str, timeout: float = 30.0) -> None:
        """Wait until each of the tenant's pods is gone, or being deleted with no container running.

        A real kubelet (1.20) stops a deleted pod's containers within seconds, but the pod object
        stays until its sandbox is removed by the kubelet's container garbage collection, which
        runs once a minute: waiting for the object itself would wait for that tick.
        """

        def stopped(pod: Any) -> bool:
            statuses = pod.status.container_statuses or []
            running = any(s.state.running is not None for s in statuses)
            return pod.metadata.deletion_timestamp is not None and not running

        wait_for(
            lambda: all(stopped(p) for p in self.pods_of(tenant_id)),
            timeout,
            f"the pods of {tenant_id} to be deleted and stopped",
        )

    def set_quota(self, pods: int, name: str = "pods") -> None:
        """A ResourceQuota on the pod count, effective once the quota controller computed it."""
        body = {"metadata": {"name": name}, "spec": {"hard": {"pods": str(pods)}}}
        existing = {q.metadata.name for q in self.core.list_namespaced_resource_quota(self.namespace).items}
        if name in existing:
            self.core.patch_namespaced_resource_quota(name, self.namespace, body)
        else:
            self.core.create_namespaced_resource_quota(self.namespace, body)

        def computed() -> bool:
            quota = wait_for_quota(self.core, self.namespace, name)
            return bool((quota.status.hard or {}).get("pods") == str(pods))

        wait_for(computed, 30, f"quota {name} to allow {pods} pods")


__all__ = ["FOREVER", "IMAGE", "REAL_IMAGE", "Code", "KubeEnv", "kube_dag", "on_node", "sh_command"]
