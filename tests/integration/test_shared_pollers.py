"""Many ``ComputeStatusTrigger``s in one event loop share one poller per backend: against moto
(ECS) and the real Kubernetes API server, with the fault proxy in between counting requests and
injecting throttles and 410s.

What each test shows, on the wire:

* ECS: the triggers' units are read together (one DescribeTasks per round for all of them), each
  trigger hears only about its own units, a cancelled trigger leaves, and when the last one
  leaves no request follows; a burst of throttles longer than the hook's own retries slows the
  poller down but fails no trigger.
* Kubernetes: one list and one watch serve every trigger of a namespace, no request at all is
  made while nothing changes, a finished pod is reported through the watch; a 410 Gone (as an
  HTTP status or as an ERROR event in the stream) leads to a relist, a 429 with Retry-After on
  the list is waited out, and a watch RBAC forbids (a user allowed to get and list pods, not to
  watch them) falls back to polling.

Nothing is mocked: tasks and pods are real objects on the real endpoints, finished the way the
endpoint reports it (the moto script, the node simulator playing the kubelet).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_compute_provider.hooks.base import ExecutionRef, LaunchPlan, Unit, UnitLaunch
from airflow_compute_provider.hooks.ecs import EcsComputeHook
from airflow_compute_provider.hooks.kubernetes import KubernetesComputeHook
from airflow_compute_provider.triggers import kube_watch, pollers
from airflow_compute_provider.triggers.kube_watch import KubernetesWatchSource
from airflow_compute_provider.triggers.status import ComputeStatusTrigger
from tests.harness.ecs import REGION, EcsEnv
from tests.harness.ecs_script import RUNS_FOREVER, SUCCEEDED, exited
from tests.harness.kubecluster import RESTRICTED_USER, KubeCluster
from tests.harness.nodesim import SCRIPT_ANNOTATION, NodeSimulator
from tests.harness.proxy import FaultProxy
from tests.harness.proxy_faults import Delay, Respond, ecs_throttle, kube_error, kube_throttle

INTERVAL = 0.5
EVENT_TIMEOUT = 60.0
PODS = r"/namespaces/[^/]+/pods$"


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout=180))


async def first_event(trigger: ComputeStatusTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger yielded nothing")


async def until(check: Callable[[], Any], what: str, timeout: float = EVENT_TIMEOUT) -> Any:
    """Await ``check()`` becoming truthy (polled every 50 ms), in the event loop under test."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := check()):
        if loop.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return result


def trigger_for(provider: str, config: dict[str, Any], units: list[Unit]) -> ComputeStatusTrigger:
    return ComputeStatusTrigger(
        provider=provider,
        backend_config=config,
        units=[u.to_dict() for u in units],
        deadline=(datetime.now(UTC) + timedelta(minutes=10)).isoformat(),
        poll_interval=INTERVAL,
        resume={"units": len(units)},
    )


def phases(event: dict[str, Any]) -> dict[str, str]:
    return {s["unit"]["resource_id"]: s["phase"] for s in event["statuses"]}


# -- ECS ----------------------------------------------------------------------------------------


def ecs_units(ecs_env: EcsEnv, count: int) -> list[Unit]:
    ecs_env.default_script = RUNS_FOREVER
    tasks = ecs_env.run_task(count=count)["tasks"]
    locator = {"region": REGION, "cluster": ecs_env.cluster_name}
    return [Unit(0, 0, t["taskArn"], locator) for t in tasks]


def ecs_config(ecs_env: EcsEnv, **botocore: Any) -> dict[str, Any]:
    return EcsComputeHook(cluster=ecs_env.cluster_name, botocore_config=botocore or None).backend_config()


@pytest.fixture
def ecs_proxy(ecs_env: EcsEnv, fault_proxy: Callable[[str], FaultProxy]) -> FaultProxy:
    proxy = fault_proxy(ecs_env.endpoint_url)
    ecs_env.route_through(proxy.url)
    return proxy


def test_ecs_triggers_share_one_describe_per_round_and_each_hears_only_its_units(
    ecs_env: EcsEnv, ecs_proxy: FaultProxy
) -> None:
    a, b1, b2, c = ecs_units(ecs_env, 4)
    config = ecs_config(ecs_env)
    key = pollers.poller_key("ecs", config)

    async def scenario() -> None:
        waiting = {
            "a": asyncio.create_task(first_event(trigger_for("ecs", config, [a]))),
            "b": asyncio.create_task(first_event(trigger_for("ecs", config, [b1, b2]))),
            "c": asyncio.create_task(first_event(trigger_for("ecs", config, [c]))),
        }
        poller = await until(lambda: pollers.pollers().get(key), "the shared poller")
        await until(lambda: poller.stats.rounds >= 3, "three rounds")
        assert poller.subscribers == 3
        assert not any(task.done() for task in waiting.values())

        ecs_env.stop_task(a.resource_id, SUCCEEDED)
        ecs_env.stop_task(b2.resource_id, exited(1))
        event_a = await asyncio.wait_for(waiting["a"], EVENT_TIMEOUT)
        event_b = await asyncio.wait_for(waiting["b"], EVENT_TIMEOUT)

        assert event_a["kind"] == "settled"
        assert phases(event_a) == {a.resource_id: "succeeded"}
        assert event_b["kind"] == "settled"
        assert phases(event_b) == {b1.resource_id: "running", b2.resource_id: "failed"}
        assert event_b["statuses"][1]["error"]["code"] == "CONTAINER_FAILED"
        assert event_b["resume"] == {"units": 2}
        assert not waiting["c"].done()
        await until(lambda: poller.subscribers == 1, "the finished triggers to leave")

        waiting["c"].cancel()
        await asyncio.gather(waiting["c"], return_exceptions=True)
        assert key not in pollers.pollers()
        # One DescribeTasks per round carried every unit of every trigger.
        assert ecs_proxy.counts["DescribeTasks"] == poller.stats.rounds
        assert poller.stats.units_read > poller.stats.rounds

    run(scenario())


def test_a_cancelled_ecs_trigger_unsubscribes_and_the_last_one_stops_all_polling(
    ecs_env: EcsEnv, ecs_proxy: FaultProxy
) -> None:
    one, two = ecs_units(ecs_env, 2)
    config = ecs_config(ecs_env)
    key = pollers.poller_key("ecs", config)

    async def scenario() -> None:
        first = asyncio.create_task(first_event(trigger_for("ecs", config, [one])))
        second = asyncio.create_task(first_event(trigger_for("ecs", config, [two])))
        poller = await until(lambda: pollers.pollers().get(key), "the shared poller")
        await until(lambda: poller.stats.rounds >= 2, "two rounds")
        units_per_round = poller.stats.units_read

        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        assert poller.subscribers == 1
        before = (poller.stats.rounds, poller.stats.units_read)
        await until(lambda: poller.stats.rounds >= before[0] + 2, "two more rounds")
        # Only the remaining trigger's unit is read now.
        rounds = poller.stats.rounds - before[0]
        assert poller.stats.units_read - before[1] == rounds
        assert units_per_round >= 2

        second.cancel()
        await asyncio.gather(second, return_exceptions=True)
        assert key not in pollers.pollers()
        requests = ecs_proxy.counts["DescribeTasks"]
        await asyncio.sleep(INTERVAL * 4)
        assert ecs_proxy.counts["DescribeTasks"] == requests

    run(scenario())


def test_a_throttling_burst_longer_than_the_hook_retries_slows_the_poller_but_fails_no_trigger(
    ecs_env: EcsEnv, ecs_proxy: FaultProxy
) -> None:
    first, second = ecs_units(ecs_env, 2)
    # botocore's own retries off: the hook's five attempts are all there is per round.
    config = ecs_config(ecs_env, retries={"total_max_attempts": 1, "mode": "standard"})
    key = pollers.poller_key("ecs", config)
    ecs_proxy.add_rule(ecs_throttle(), operation="DescribeTasks", times=7)

    async def scenario() -> None:
        waiting = [
            asyncio.create_task(first_event(trigger_for("ecs", config, [first]))),
            asyncio.create_task(first_event(trigger_for("ecs", config, [second]))),
        ]
        poller = await until(lambda: pollers.pollers().get(key), "the shared poller")
        await until(lambda: poller.stats.rounds >= 1, "a round after the burst")
        assert poller.stats.failures >= 1
        assert not any(task.done() for task in waiting)

        ecs_env.stop_task(first.resource_id, SUCCEEDED)
        ecs_env.stop_task(second.resource_id, SUCCEEDED)
        events = await asyncio.wait_for(asyncio.gather(*waiting), EVENT_TIMEOUT)
        assert [e["kind"] for e in events] == ["settled", "settled"]
        assert [phases(e) for e in events] == [
            {first.resource_id: "succeeded"},
            {second.resource_id: "succeeded"},
        ]

    run(scenario())
    assert ecs_proxy.counts.faulted["DescribeTasks"] == 7


# -- Kubernetes ---------------------------------------------------------------------------------


def pod_template(script: str = "run:forever") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"annotations": {SCRIPT_ANNOTATION: script}},
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "busybox:1.36",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}},
                }
            ]
        },
    }


def launch_pods(hook: KubernetesComputeHook, executions: int, units_each: int = 1) -> list[list[Unit]]:
    """Pods of ``executions`` executions, launched as the operator launches them."""
    launched = []
    for _ in range(executions):
        execution = ExecutionRef("tenant-p", f"dag.poll/{secrets.token_hex(6)}")
        plan = LaunchPlan(execution, [UnitLaunch(i, 1) for i in range(units_each)], pod_template(), "poll")
        result = hook.launch(plan)
        assert not result.refused, result.refused
        launched.append(list(result.launched))
    return launched


def finish_pod(core: Any, namespace: str, unit: Unit, script: str = "exit:0") -> None:
    """Rescript the pod: the node simulator terminates it as a kubelet would."""
    core.patch_namespaced_pod(
        unit.resource_id, namespace, {"metadata": {"annotations": {SCRIPT_ANNOTATION: script}}}
    )


def kubeconfig_for(path: Path, server: str, cluster: KubeCluster) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": server}}],
        "users": [{"name": "u", "user": {"token": cluster.token}}],
        "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "ctx",
    }
    path.write_text(json.dumps(config))
    return str(path)


class KubeSetup:
    """Pods launched directly; triggers reading through the proxy."""

    def __init__(self, cluster: KubeCluster, namespace: str, proxy: FaultProxy, tmp_path: Path) -> None:
        self.namespace = namespace
        self.proxy = proxy
        self.launcher = KubernetesComputeHook(namespace=namespace, config_file=str(cluster.kubeconfig))
        proxied = kubeconfig_for(tmp_path / "proxied", proxy.url, cluster)
        self.config = KubernetesComputeHook(namespace=namespace, config_file=proxied).backend_config()
        self.key = pollers.poller_key("kubernetes", self.config)

    def read_as(self, cluster: KubeCluster, user: str) -> None:
        """From now on the triggers read as ``user`` (through the same proxy)."""
        config_file = cluster.kubeconfig_for(user, server=self.proxy.url)
        hook = KubernetesComputeHook(namespace=self.namespace, config_file=str(config_file))
        self.config = hook.backend_config()
        self.key = pollers.poller_key("kubernetes", self.config)

    def trigger(self, units: list[Unit]) -> ComputeStatusTrigger:
        return trigger_for("kubernetes", self.config, units)

    def source(self) -> KubernetesWatchSource | None:
        poller = pollers.pollers().get(self.key)
        return poller.source if poller is not None else None  # type: ignore[return-value]

    def watching(self, watches: int = 1) -> bool:
        source = self.source()
        cache = source.namespaces.get(self.namespace) if source else None
        return bool(cache and cache.synced and cache.watches >= watches)

    def pod_lists(self) -> int:
        return self.proxy.count(method="GET", path=PODS)


@pytest.fixture
def kube(
    kube_cluster: KubeCluster,
    kube_namespace: str,
    node_simulator: NodeSimulator,
    fault_proxy: Callable[[str], FaultProxy],
    tmp_path: Path,
) -> KubeSetup:
    return KubeSetup(kube_cluster, kube_namespace, fault_proxy(kube_cluster.server), tmp_path)


@pytest.mark.kube
def test_one_watch_serves_every_pod_trigger_and_costs_no_request_while_nothing_changes(
    kube: KubeSetup, kube_core: Any
) -> None:
    ((a,),) = launch_pods(kube.launcher, 1)
    ((b1, b2),) = launch_pods(kube.launcher, 1, units_each=2)
    ((c,),) = launch_pods(kube.launcher, 1)

    async def scenario() -> None:
        waiting = {
            "a": asyncio.create_task(first_event(kube.trigger([a]))),
            "b": asyncio.create_task(first_event(kube.trigger([b1, b2]))),
            "c": asyncio.create_task(first_event(kube.trigger([c]))),
        }
        await until(kube.watching, "the watch")
        poller = pollers.pollers()[kube.key]
        assert poller.subscribers == 3
        await until(lambda: poller.stats.rounds >= 3, "three rounds")

        kube.proxy.reset_counts()
        rounds = poller.stats.rounds
        await until(lambda: poller.stats.rounds >= rounds + 4, "four quiet rounds")
        assert kube.proxy.counts.total == 0  # served from the watch: not one request

        finish_pod(kube_core, kube.namespace, a)
        finish_pod(kube_core, kube.namespace, b1, "exit:3")
        event_a = await asyncio.wait_for(waiting["a"], EVENT_TIMEOUT)
        event_b = await asyncio.wait_for(waiting["b"], EVENT_TIMEOUT)
        assert phases(event_a) == {a.resource_id: "succeeded"}
        assert event_b["kind"] == "settled"
        assert phases(event_b) == {b1.resource_id: "failed", b2.resource_id: "running"}
        assert event_b["statuses"][0]["error"]["code"] == "CONTAINER_FAILED"
        assert not waiting["c"].done()
        assert kube.proxy.counts.total == 0  # the finish came through the watch as well

        waiting["c"].cancel()
        await asyncio.gather(waiting["c"], return_exceptions=True)
        assert kube.key not in pollers.pollers()

    run(scenario())


GONE_EVENT = Respond(
    200,
    json.dumps(
        {
            "type": "ERROR",
            "object": {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "too old resource version: 1 (2)",
                "reason": "Expired",
                "code": 410,
            },
        }
    ).encode()
    + b"\n",
    {"Content-Type": "application/json"},
)


@pytest.mark.kube
@pytest.mark.parametrize(
    "gone",
    [kube_error(410, "Gone", "too old resource version: 1 (2)"), GONE_EVENT],
    ids=["http-410", "error-event-410"],
)
def test_a_410_gone_watch_relists_and_keeps_reporting(kube: KubeSetup, kube_core: Any, gone: Respond) -> None:
    ((pod,),) = launch_pods(kube.launcher, 1)
    kube.proxy.add_rule(gone, method="GET", path=r"[?&]watch=", times=1)

    async def scenario() -> None:
        waiting = asyncio.create_task(first_event(kube.trigger([pod])))
        await until(lambda: kube.watching(watches=2), "the watch after the 410")
        cache = kube.source().namespaces[kube.namespace]  # type: ignore[union-attr]
        assert cache.lists == 2  # the first list, and the relist the 410 asked for
        assert not waiting.done()

        finish_pod(kube_core, kube.namespace, pod)
        event = await asyncio.wait_for(waiting, EVENT_TIMEOUT)
        assert event["kind"] == "settled"
        assert phases(event) == {pod.resource_id: "succeeded"}

    run(scenario())
    assert kube.proxy.counts.faulted == {f"GET /api/v1/namespaces/{kube.namespace}/pods": 1}


@pytest.mark.kube
def test_a_stalled_watch_is_outlived_by_a_relist(kube: KubeSetup, kube_core: Any, monkeypatch) -> None:
    # The proxy holds every watch request open without an answer: the watch never fails, it
    # only stays silent. A cache that heard nothing for STALE_AFTER_SECONDS lists again.
    monkeypatch.setattr(kube_watch, "STALE_AFTER_SECONDS", 1.0)
    ((pod,),) = launch_pods(kube.launcher, 1)
    kube.proxy.add_rule(Delay(120.0), method="GET", path=r"[?&]watch=")

    async def scenario() -> None:
        waiting = asyncio.create_task(first_event(kube.trigger([pod])))
        await until(lambda: kube.pod_lists() >= 1, "the first list")
        finish_pod(kube_core, kube.namespace, pod)
        event = await asyncio.wait_for(waiting, EVENT_TIMEOUT)
        assert phases(event) == {pod.resource_id: "succeeded"}

    run(scenario())
    assert kube.pod_lists() >= 2, "the finish was seen by a relist, not by the stalled watch"


@pytest.mark.kube
def test_a_throttled_pod_list_is_waited_out_with_retry_after_and_fails_no_trigger(
    kube: KubeSetup, kube_core: Any
) -> None:
    ((first,), (second,)) = launch_pods(kube.launcher, 2)
    # Six throttles: the hook's five attempts, then the poller's backoff, then one more.
    kube.proxy.add_rule(kube_throttle(retry_after=1), method="GET", path=r"/pods\?(?!.*watch=)", times=6)

    async def scenario() -> None:
        waiting = [
            asyncio.create_task(first_event(kube.trigger([first]))),
            asyncio.create_task(first_event(kube.trigger([second]))),
        ]
        poller = await until(lambda: pollers.pollers().get(kube.key), "the shared poller")
        await until(kube.watching, "the watch after the burst")
        assert poller.stats.failures == 1
        assert not any(task.done() for task in waiting)

        finish_pod(kube_core, kube.namespace, first)
        finish_pod(kube_core, kube.namespace, second)
        events = await asyncio.wait_for(asyncio.gather(*waiting), EVENT_TIMEOUT)
        assert [e["kind"] for e in events] == ["settled", "settled"]

    run(scenario())
    assert kube.proxy.count(method="GET", path=PODS, faulted=True) == 6


@pytest.mark.kube
def test_a_forbidden_watch_falls_back_to_polling(
    kube: KubeSetup, kube_cluster: KubeCluster, kube_core: Any
) -> None:
    ((pod,),) = launch_pods(kube.launcher, 1)
    # The triggers' user may get and list pods but not watch them: RBAC refuses the watch.
    kube_cluster.grant(kube.namespace, ["get", "list"])
    kube.read_as(kube_cluster, RESTRICTED_USER)
    watch_answers: list[int] = []
    kube.proxy.after_forward(
        lambda _info, status: watch_answers.append(status), method="GET", path=r"[?&]watch=", times=None
    )

    async def scenario() -> None:
        waiting = asyncio.create_task(first_event(kube.trigger([pod])))
        source = await until(kube.source, "the watch source")
        await until(
            lambda: kube.namespace in source.namespaces and not source.namespaces[kube.namespace].watching,
            "the watch to be given up",
        )
        assert watch_answers, "a watch was tried"
        assert set(watch_answers) == {403}, "the server refused every watch"
        lists = kube.pod_lists()
        await until(lambda: kube.pod_lists() >= lists + 2, "polling lists")
        finish_pod(kube_core, kube.namespace, pod)
        event = await asyncio.wait_for(waiting, EVENT_TIMEOUT)
        assert phases(event) == {pod.resource_id: "succeeded"}

    run(scenario())


# -- the benchmark, as a smoke test (counts only, never timings) ---------------------------------


def test_the_benchmark_runs_and_ours_makes_fewer_requests_than_the_official_trigger(tmp_path: Path) -> None:
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    output = tmp_path / "bench.json"
    subprocess.run(
        [
            sys.executable,
            str(repo / "bench" / "triggers.py"),
            *("--n", "20", "--intervals", "2", "--providers", "ecs", "--json", str(output)),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    results = json.loads(output.read_text())
    assert set(results) == {"ecs"}
    assert set(results["ecs"]) == {"ours", "official"}
    for measured in results["ecs"].values():
        for field in ("requests_per_interval", "cpu_seconds", "peak_rss_mb", "detect_delay_s"):
            assert isinstance(measured[field], int | float), field
        assert measured["fired_as_expected"] == 20
    ours, official = results["ecs"]["ours"], results["ecs"]["official"]
    # The official triggers make about one DescribeTasks each per interval; ours one per round.
    assert official["requests_per_interval"] >= 10
    assert ours["requests_per_interval"] * 5 <= official["requests_per_interval"]
