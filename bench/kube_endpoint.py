"""The benchmark's Kubernetes endpoint: the tests' real control plane and node simulator.

    KubeEndpoint.start(pods)   etcd, kube-apiserver, scheduler and controller manager
                               (``tests.harness.kubecluster``), and the node simulator in a
                               process of its own (two nodes with room for ``pods`` pods each,
                               polling every 2 s: it has only to start pods, and its pod lists
                               must not crowd the machine)
    endpoint.running(n)        a fresh namespace with n pods, one per execution, named and
                               labelled as the compute hook launches them, all Running
    endpoint.finish(ns, names) every pod Succeeded (exit code 0) now, written to the status
                               subresource the way a kubelet writes it; when each was (epoch)
    endpoint.stop()

Each pod is its own execution, as N deferred operators with one unit each would be: the
official trigger and ours watch the same kind of pod, one pod per trigger.
"""

from __future__ import annotations

import multiprocessing
import secrets
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_compute_provider.hooks.base import ExecutionRef, UnitLaunch
from airflow_compute_provider.hooks.kubernetes_pods import unit_pod
from tests.harness.kubecluster import KubeCluster, start_cluster
from tests.harness.nodesim import SCRIPT_ANNOTATION, NodeSimulator, NodeSpec

CONTAINER = "base"  # the official trigger's default base container name
MERGE_PATCH = "application/merge-patch+json"
_WORKERS = 8
_RUNNING_TIMEOUT = 900.0


class KubeEndpoint:
    def __init__(self, cluster: KubeCluster, simulator: Any) -> None:
        self.cluster = cluster
        self._simulator = simulator
        self.server = cluster.server
        self.token = cluster.token

    @classmethod
    def start(cls, pods_per_node: int) -> KubeEndpoint:
        cluster = start_cluster()
        try:
            context = multiprocessing.get_context("spawn")
            ready = Path(cluster.run_dir) / "nodesim.ready"
            simulator = context.Process(
                target=_simulate,
                args=(str(cluster.kubeconfig), pods_per_node, str(ready)),
                name="bench-nodesim",
                daemon=True,
            )
            simulator.start()
            deadline = time.monotonic() + 60
            while not ready.exists():
                if time.monotonic() > deadline or not simulator.is_alive():
                    raise RuntimeError("the node simulator did not come up")
                time.sleep(0.2)
        except BaseException:
            cluster.stop()
            raise
        return cls(cluster, simulator)

    def core(self) -> Any:
        from kubernetes import client

        return client.CoreV1Api(self.cluster.api_client())

    def running(self, count: int) -> tuple[str, list[str]]:
        namespace = self.cluster.new_namespace("bench")
        manifests = [_manifest(namespace) for _ in range(count)]
        core = self.core()
        with ThreadPoolExecutor(_WORKERS) as pool:
            list(
                pool.map(
                    lambda m: core.create_namespaced_pod(namespace, m, _preload_content=False), manifests
                )
            )
        names = [m["metadata"]["name"] for m in manifests]
        deadline = time.monotonic() + _RUNNING_TIMEOUT
        while True:
            running = self._running(core, namespace)
            if running >= count:
                return namespace, names
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {running} of {count} pods running in {namespace}")
            time.sleep(1.0)

    @staticmethod
    def _running(core: Any, namespace: str) -> int:
        import json

        response = core.list_namespaced_pod(namespace, _preload_content=False)
        items = json.loads(response.data)["items"]
        return sum(1 for pod in items if (pod.get("status") or {}).get("phase") == "Running")

    def finish(self, namespace: str, names: Sequence[str]) -> dict[str, float]:
        core = self.core()

        def finish_one(name: str) -> tuple[str, float]:
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            status = {
                "phase": "Succeeded",
                "containerStatuses": [
                    {
                        "name": CONTAINER,
                        "image": "busybox:1.36",
                        "imageID": "",
                        "ready": False,
                        "restartCount": 0,
                        "started": False,
                        "state": {"terminated": {"exitCode": 0, "reason": "Completed", "finishedAt": now}},
                    }
                ],
            }
            core.patch_namespaced_pod_status(
                name, namespace, {"status": status}, _content_type=MERGE_PATCH, _preload_content=False
            )
            return name, time.time()

        with ThreadPoolExecutor(_WORKERS) as pool:
            return dict(pool.map(finish_one, names))

    def stop(self) -> None:
        try:
            self._simulator.terminate()
            self._simulator.join(timeout=30)
        finally:
            self.cluster.stop()


def _manifest(namespace: str) -> dict[str, Any]:
    execution = ExecutionRef("bench", f"bench/{secrets.token_hex(8)}")
    template = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"annotations": {SCRIPT_ANNOTATION: "run:forever"}},
        "spec": {
            "containers": [
                {
                    "name": CONTAINER,
                    "image": "busybox:1.36",
                    "resources": {"requests": {"cpu": "1m", "memory": "4Mi"}},
                }
            ]
        },
    }
    return unit_pod(template, execution, UnitLaunch(0, 1), namespace, "bench")


def _simulate(kubeconfig: str, pods_per_node: int, ready_file: str) -> None:
    import logging
    import signal

    logging.basicConfig(level=logging.WARNING)
    nodes = [NodeSpec(f"bench-node-{i}", cpu="256", memory="1024Gi", pods=str(pods_per_node)) for i in (1, 2)]
    simulator = NodeSimulator(kubeconfig, nodes, interval=2.0)
    signal.signal(signal.SIGTERM, lambda _sig, _frame: simulator.request_stop())
    simulator.run_forever(ready_file=ready_file)
