"""pytest fixtures for the real Kubernetes API server (``kubecluster``) and the node simulator.

    kube_cluster        session: a ``KubeCluster`` (``.server``, ``.token``, ``.kubeconfig``,
                        ``.ca_file``, ``.api_client()``, ``.new_namespace()``, ``.delete_namespace()``;
                        RBAC is on: ``.restricted_kubeconfig`` / ``.kubeconfig_for(RESTRICTED_USER,
                        server)`` authenticate a user with no binding, ``.grant(namespace, verbs)``
                        gives it a Role in one namespace); builds the binaries through
                        ``scripts/build-kube`` when none are cached
    real_node           session: a ``RealNode`` (``realnode``): containerd and a real kubelet
                        registered as ``real-node-1``; a pod whose spec carries
                        ``real_node.placement()`` runs there as a real container (image
                        ``realnode.IMAGE``, built from Debian's busybox-static)
    node_simulator      session: a running ``NodeSimulator`` with two nodes of 4 CPUs / 8 GiB
                        (``sim-node-1``, ``sim-node-2``); pods bound to them follow their
                        ``sim.compute.test/script`` annotation. Only for what one machine cannot
                        do for real: node loss, eviction under pressure, Spot, preemption
    kube_namespace      function: a fresh namespace (its ``default`` ServiceAccount ready, so the
                        ServiceAccount admission plugin admits pods), deleted after the test
    kube_core           function: a ``kubernetes.client.CoreV1Api`` for the cluster
    kube_airflow_conn   function: sets ``AIRFLOW_CONN_KUBERNETES_DEFAULT`` for ``kube_namespace``

    kubernetes_connection_json(kubeconfig, namespace)  the JSON of that Airflow connection
    wait_for_pod(core, namespace, name, predicate)     poll a pod until ``predicate(pod)``
    read_log(core, namespace, pod, container=None)     a container's output, from the kubelet
    wait_for_quota(core, namespace, name)              poll until the quota controller filled
                                                       ``status.hard`` (before that, admission
                                                       refuses pods with "status unknown for quota")

Tests that use these carry ``@pytest.mark.kube``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.harness.kubecluster import KubeCluster, start_cluster
from tests.harness.nodesim import NodeSimulator, default_nodes
from tests.harness.realnode import RealNode, start_real_node

AIRFLOW_CONN_ENV = "AIRFLOW_CONN_KUBERNETES_DEFAULT"


def kubernetes_connection_json(kubeconfig: str | Path, namespace: str) -> str:
    """An Airflow connection (``conn_type`` kubernetes) for ``AIRFLOW_CONN_<ID>`` variables."""
    return json.dumps(
        {"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig), "namespace": namespace}}
    )


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy and return that; ``TimeoutError`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def wait_for_pod(
    core: Any, namespace: str, name: str, predicate: Callable[[Any], bool], timeout: float = 30.0
) -> Any:
    """Read the pod until ``predicate(pod)`` holds; returns that ``V1Pod``."""

    def check() -> Any:
        pod = core.read_namespaced_pod(name, namespace)
        return pod if predicate(pod) else None

    return wait_for(check, timeout, f"pod {namespace}/{name}")


def read_log(core: Any, namespace: str, pod: str, container: str | None = None) -> str:
    """A container's output (``pods/{name}/log``, which the API server fetches from the kubelet).

    Read raw: the generated client returns the body's ``str(bytes)`` (``"b'...'"``) otherwise.
    """
    kwargs = {"container": container} if container else {}
    response = core.read_namespaced_pod_log(pod, namespace, _preload_content=False, **kwargs)
    return str(response.data.decode())


def wait_for_quota(core: Any, namespace: str, name: str, timeout: float = 30.0) -> Any:
    def check() -> Any:
        quota = core.read_namespaced_resource_quota(name, namespace)
        return quota if quota.status and quota.status.hard else None

    return wait_for(check, timeout, f"quota {namespace}/{name} to be computed")


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[KubeCluster]:
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def real_node(kube_cluster: KubeCluster) -> Iterator[RealNode]:
    node = start_real_node(kube_cluster)
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(scope="session")
def node_simulator(kube_cluster: KubeCluster) -> Iterator[NodeSimulator]:
    sim = NodeSimulator(kube_cluster.kubeconfig, default_nodes()).start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def kube_namespace(kube_cluster: KubeCluster) -> Iterator[str]:
    name = kube_cluster.new_namespace()
    try:
        yield name
    finally:
        kube_cluster.delete_namespace(name)


@pytest.fixture
def kube_core(kube_cluster: KubeCluster) -> Iterator[Any]:
    from kubernetes import client

    with kube_cluster.api_client() as api:
        yield client.CoreV1Api(api)


@pytest.fixture
def kube_env(
    kube_cluster: KubeCluster,
    kube_namespace: str,
    kube_core: Any,
    node_simulator: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Any:
    """One test's namespace, with the node simulator running: the Airflow connection points at
    it, and ``.dag(...)`` writes a DAG file of a ``KubernetesComputeOperator`` there
    (``tests.integration.kubernetes_dags.KubeEnv``; set ``.node`` to run pods on the real node)."""
    from tests.integration.kubernetes_dags import KubeEnv  # imports Airflow: after its home is set

    return KubeEnv(kube_cluster, kube_namespace, kube_core, monkeypatch, tmp_path)


@dataclass(frozen=True)
class KubeAirflowConnection:
    conn_id: str
    namespace: str
    json: str


@pytest.fixture
def kube_airflow_conn(
    kube_cluster: KubeCluster, kube_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> KubeAirflowConnection:
    conn_json = kubernetes_connection_json(kube_cluster.kubeconfig, kube_namespace)
    monkeypatch.setenv(AIRFLOW_CONN_ENV, conn_json)
    return KubeAirflowConnection("kubernetes_default", kube_namespace, conn_json)
