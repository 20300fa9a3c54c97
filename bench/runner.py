"""One side of the benchmark: N triggers (ours or the official ones) in one event loop, in a
process of its own so that its CPU time and memory are its own.

    python bench/runner.py SPEC.json

The spec names the provider, the side, the units (one trigger per unit), the poll interval and
the backend config; the connections (pointing at the counting proxy) come from the environment.
The runner starts every trigger as the triggerer does (a task iterating ``trigger.run()``),
then answers JSON lines on stdin, one JSON line on stdout each:

    {"op": "mark"}                 -> {"cpu": process CPU seconds so far, "fired": n}
    {"op": "collect", "timeout": s} waits until every trigger fired (or ``s`` passed), then
                                   -> {"fired": {unit: [epoch, ok]}, "cpu": ..., "peak_rss_mb": ...}

and exits. The first line it prints, once every trigger runs, is {"started": epoch, ...}.
``ok`` says the event was the success the unit's finish should produce (``settled`` with the
unit succeeded for ours, ``status: success`` for the official triggers).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

# The protocol's own copy of stdout; fd 1 itself goes to stderr, so that whatever else prints
# (Airflow's log setup writes to stdout) cannot garble it.
_protocol = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)


def emit(payload: dict[str, Any]) -> None:
    _protocol.write(json.dumps(payload) + "\n")
    _protocol.flush()


_profile: list[Any] = []  # [cProfile.Profile, path] when BENCH_PROFILE is set


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


Build = Callable[[dict[str, Any], str], tuple[Any, Callable[[dict[str, Any]], bool]]]


def ours(spec: dict[str, Any], resource_id: str) -> tuple[Any, Callable[[dict[str, Any]], bool]]:
    from airflow_compute_provider.hooks.base import Unit
    from airflow_compute_provider.triggers.status import ComputeStatusTrigger

    unit = Unit(0, 0 if spec["provider"] == "ecs" else 1, resource_id, spec["locator"])

    def ok(payload: dict[str, Any]) -> bool:
        return payload.get("kind") == "settled" and payload["statuses"][0]["phase"] == "succeeded"

    if "get_logs" in spec:
        return as_the_operator_defers(spec, unit), ok
    trigger = ComputeStatusTrigger(
        provider=spec["provider"],
        backend_config=spec["config"],
        units=[unit.to_dict()],
        deadline=(datetime.now(UTC) + timedelta(hours=2)).isoformat(),
        poll_interval=spec["interval"],
    )
    return trigger, ok


def as_the_operator_defers(spec: dict[str, Any], unit: Any) -> Any:
    """The trigger a compute operator defers to (``lifecycle.wait.status_trigger``), its try's
    arguments the operator's defaults with ``get_logs`` as the spec says (``--get-logs``)."""
    from airflow_compute_provider.hooks.base import ExecutionRef
    from airflow_compute_provider.lifecycle.arguments import ComputeArguments
    from airflow_compute_provider.lifecycle.deadline import DeadlineBy, TryDeadline
    from airflow_compute_provider.lifecycle.tries import Try
    from airflow_compute_provider.lifecycle.wait import status_trigger
    from airflow_compute_provider.registry import backend_from_config

    args = ComputeArguments.validated(
        {
            "tenant_id": "bench",
            "operation": "bench",
            "poll_interval": float(spec["interval"]),
            "get_logs": bool(spec["get_logs"]),
        }
    )
    t = Try.start(ExecutionRef("bench", unit.resource_id), 1, args, provider=spec["provider"])
    backend = backend_from_config(spec["provider"], spec["config"])
    deadline = TryDeadline(datetime.now(UTC) + timedelta(hours=2), DeadlineBy.TIMEOUT, timedelta(hours=2))
    return status_trigger(t, backend, [unit], [], deadline)


def official(spec: dict[str, Any], resource_id: str) -> tuple[Any, Callable[[dict[str, Any]], bool]]:
    trigger: Any
    if spec["provider"] == "ecs":
        from airflow.providers.amazon.aws.triggers.ecs import TaskDoneTrigger

        trigger = TaskDoneTrigger(
            cluster=spec["locator"]["cluster"],
            task_arn=resource_id,
            waiter_delay=int(spec["interval"]),
            waiter_max_attempts=1_000_000,
            aws_conn_id="aws_default",
            region_name=spec["locator"]["region"],
        )
    else:
        from airflow.providers.cncf.kubernetes.triggers.pod import KubernetesPodTrigger

        trigger = KubernetesPodTrigger(
            pod_name=resource_id,
            pod_namespace=spec["locator"]["namespace"],
            trigger_start_time=datetime.now(UTC),
            base_container_name="base",
            kubernetes_conn_id="kubernetes_default",
            poll_interval=spec["interval"],
            startup_check_interval=spec["interval"],
            get_logs=False,
            on_finish_action="keep_pod",
            on_kill_action="keep_pod",
            # the default (True) also watches each pod's events while it starts: more requests
            log_events_on_startup=False,
        )

    def ok(payload: dict[str, Any]) -> bool:
        return payload.get("status") == "success"

    return trigger, ok


async def serve(spec: dict[str, Any]) -> None:
    build: Build = ours if spec["side"] == "ours" else official
    loop = asyncio.get_running_loop()
    cpu_start = time.process_time()
    fired: dict[str, tuple[float, bool]] = {}

    async def watch(resource_id: str) -> None:
        trigger, ok = build(spec, resource_id)
        async for event in trigger.run():
            fired[resource_id] = (time.time(), ok(event.payload))
            return

    tasks = [asyncio.create_task(watch(rid)) for rid in spec["units"]]
    await asyncio.sleep(0)
    emit({"started": time.time(), "cpu": time.process_time() - cpu_start})
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        command = json.loads(line)
        if command["op"] == "mark":
            emit({"cpu": time.process_time() - cpu_start, "fired": len(fired)})
        elif command["op"] == "collect":
            _done, pending = await asyncio.wait(tasks, timeout=float(command["timeout"]))
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if _profile:
                _profile[0].disable()
                _profile[0].dump_stats(_profile[1])
            emit(
                {
                    "fired": {rid: list(value) for rid, value in fired.items()},
                    "cpu": time.process_time() - cpu_start,
                    "peak_rss_mb": peak_rss_mb(),
                }
            )
            break


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    # Both sides log at WARNING: the benchmark measures polling, not log formatting.
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("airflow").setLevel(logging.WARNING)
    # Import everything a trigger needs before anything is measured.
    import airflow.providers.amazon.aws.triggers.ecs
    import airflow.providers.cncf.kubernetes.triggers.pod  # noqa: F401

    import airflow_compute_provider.hooks.ecs
    import airflow_compute_provider.hooks.kubernetes
    import airflow_compute_provider.triggers.kube_watch
    import airflow_compute_provider.triggers.status  # noqa: F401

    emit({"imported": time.time(), "rss_mb": peak_rss_mb()})
    profile_to = os.environ.get("BENCH_PROFILE")
    if profile_to:
        # Where the time goes (BENCH_PROFILE=path: cProfile stats of the run, for pstats),
        # written before the last answer: the benchmark kills the runner once it has it.
        import cProfile

        _profile[:] = [cProfile.Profile(), f"{profile_to}.{spec['provider']}-{spec['side']}"]
        _profile[0].enable()
    asyncio.run(serve(spec))


if __name__ == "__main__":
    main()
