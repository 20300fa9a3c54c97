"""The clouds the demo talks to: a moto server as the ECS endpoint, and a local Kubernetes API server.

Both come from the test harness (``tests/harness``), so the demo exercises exactly what the
integration tests do:

    EcsBackend    moto in this process, patched by ``ecs_script`` so that ECS tasks and RunTask
                  answers can be scripted, behind a ``FaultProxy`` that can answer as ECS does
                  when it throttles or refuses a request. ``stage()`` gives each scenario a clean
                  moto (cluster, FARGATE task definition, subnet, security group) and points
                  Airflow's ``aws_default`` at the proxy
    KubeBackend   etcd + kube-apiserver + scheduler + controller manager built from Debian's
                  source package (``scripts/build-kube``), with the node simulator playing the
                  kubelet; ``stage()`` gives each scenario its own namespace and points
                  ``kubernetes_default`` at it

moto stands in for AWS itself, which cannot run here; every layer between the DAG and the ECS API
(Airflow, the Amazon provider's hook, botocore, HTTP) is the real one.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from tests.harness.ecs import FAKE_CREDENTIALS, REGION, TASK_FAMILY, EcsEnv, MotoServer
from tests.harness.ecs_script import EcsScripter, activate, install_moto_patches
from tests.harness.kube import AIRFLOW_CONN_ENV, kubernetes_connection_json, wait_for_quota
from tests.harness.kubecluster import KubeCluster, find_binaries, start_cluster
from tests.harness.nodesim import NodeSimulator, default_nodes
from tests.harness.ports import LOOPBACK
from tests.harness.proxy import FaultProxy

AWS_CONN_ENV = "AIRFLOW_CONN_AWS_DEFAULT"
#: botocore requests per ECS call: fixed, so a scenario knows how many throttles fail one try
BOTOCORE_ATTEMPTS = 2


def aws_connection(endpoint_url: str) -> str:
    return json.dumps(
        {
            "conn_type": "aws",
            "login": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "password": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "extra": {
                "endpoint_url": endpoint_url,
                "region_name": REGION,
                "config_kwargs": {"retries": {"mode": "standard", "total_max_attempts": BOTOCORE_ATTEMPTS}},
            },
        }
    )


@dataclass
class EcsStage:
    """One scenario's ECS: the scripting API (``env``) and the fault proxy on the wire."""

    env: EcsEnv
    proxy: FaultProxy

    def params(self) -> dict[str, Any]:
        """The example DAGs' params that name the resources this moto has."""
        return {
            "cluster": self.env.cluster_name,
            "task_definition": TASK_FAMILY,
            "subnets": [self.env.subnet_id],
            "security_groups": [self.env.security_group_id],
        }

    def tasks_of(self, tenant_id: str) -> list[dict[str, Any]]:
        """Every task (running or stopped) that carries the tenant's tag, read from moto directly."""
        from airflow_compute_provider.hooks.ecs_tags import TENANT_ID_TAG

        ecs = self.env.ecs
        arns: list[str] = []
        for desired in ("RUNNING", "STOPPED"):
            arns += ecs.list_tasks(cluster=self.env.cluster_name, desiredStatus=desired)["taskArns"]
        if not arns:
            return []
        tasks: list[dict[str, Any]] = ecs.describe_tasks(
            cluster=self.env.cluster_name, tasks=arns, include=["TAGS"]
        )["tasks"]
        return [t for t in tasks if {"key": TENANT_ID_TAG, "value": tenant_id} in t.get("tags", [])]


class EcsBackend:
    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        # moto's request log would drown the demo's output
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        for name, value in FAKE_CREDENTIALS.items():
            os.environ[name] = value
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ECS"):
            os.environ.pop(name, None)
        self._undo_patches = install_moto_patches()
        self._server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.moto = MotoServer(url=f"http://{host}:{port}", _server=self._server)
        self.proxy = FaultProxy(self.moto.url).start()
        self._monkeypatch = pytest.MonkeyPatch()

    @contextmanager
    def stage(self) -> Iterator[EcsStage]:
        self.moto.reset()
        self.proxy.reset()
        with activate(EcsScripter()) as scripter:
            env = EcsEnv(self.moto, scripter, self._monkeypatch)
            env._create_resources()
            os.environ[AWS_CONN_ENV] = aws_connection(self.proxy.url)
            yield EcsStage(env, self.proxy)

    def stop(self) -> None:
        self.proxy.stop()
        self._server.stop()
        self._undo_patches()
        self._monkeypatch.undo()


def kube_binaries_built() -> bool:
    try:
        find_binaries(build=False)
    except FileNotFoundError:
        return False
    return True


@dataclass
class KubeStage:
    """One scenario's namespace on the local cluster."""

    cluster: KubeCluster
    namespace: str

    def params(self) -> dict[str, Any]:
        return {"namespace": self.namespace}

    def set_pod_quota(self, pods: int) -> None:
        """A ResourceQuota on the pod count, effective once the quota controller computed it."""
        from kubernetes import client

        with self.cluster.api_client() as api:
            core = client.CoreV1Api(api)
            body = {"metadata": {"name": "pods"}, "spec": {"hard": {"pods": str(pods)}}}
            core.create_namespaced_resource_quota(self.namespace, body)
            wait_for_quota(core, self.namespace, "pods")

    def pods_of(self, tenant_id: str) -> list[Any]:
        from kubernetes import client

        from airflow_compute_provider.hooks.kubernetes_pods import LABEL_TENANT_ID, label_value

        with self.cluster.api_client() as api:
            pods: list[Any] = (
                client.CoreV1Api(api)
                .list_namespaced_pod(
                    self.namespace, label_selector=f"{LABEL_TENANT_ID}={label_value(tenant_id)}"
                )
                .items
            )
            return pods


class KubeBackend:
    def __init__(self, *, build: bool) -> None:
        self.cluster = start_cluster(bin_dir=find_binaries(build=build))
        try:
            self.simulator = NodeSimulator(self.cluster.kubeconfig, default_nodes()).start()
        except Exception:
            self.cluster.stop()
            raise

    @contextmanager
    def stage(self) -> Iterator[KubeStage]:
        namespace = self.cluster.new_namespace("demo")
        os.environ[AIRFLOW_CONN_ENV] = kubernetes_connection_json(self.cluster.kubeconfig, namespace)
        yield KubeStage(self.cluster, namespace)

    def stop(self) -> None:
        self.simulator.stop()
        self.cluster.stop()
