"""One worker process of the launch benchmark: some tries, each launching its units, all at once.

    python bench/launch_worker.py SPEC.json      -> one JSON line on stdout

The spec names the variant, the tries (``[try_number, ...]``), the units per try, the cluster
and the RunTask request; the connection (pointing at the throttling proxy) comes from the
environment. Every try is a thread started together with the others, as tries of many DAG runs
landing on one worker would be:

    ours / today   ``EcsComputeHook(...).launch(plan)`` of the try's units; "today" is the same
                   script run with the main branch's package first on ``PYTHONPATH``
    adaptive       as "today", with botocore's ``adaptive`` retry mode (its client-side bucket)
    official       the Amazon provider's ``EcsRunTaskOperator`` (one task per operator, as it
                   launches), ``wait_for_completion=False``: ten operators per try, each its own
                   thread and client, as ten task instances would be

The line: ``{"units": {"try-unit": "launched" | error code}, "seconds": wall}``. Whatever the
run logs goes to stderr.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from typing import Any

_protocol = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)


def _ours(spec: dict[str, Any], try_number: int, results: dict[str, str]) -> None:
    from airflow_compute_provider.hooks.base import ExecutionRef, LaunchPlan, UnitLaunch
    from airflow_compute_provider.hooks.ecs import EcsComputeHook

    config = None
    if spec["variant"] == "adaptive":
        config = {"retries": {"mode": "adaptive", "max_attempts": 10}}
    hook = EcsComputeHook(cluster=spec["cluster"], region_name=spec["region"], botocore_config=config)
    execution = ExecutionRef(tenant_id="bench", execution_id=f"{spec['run_id']}-try-{try_number}")
    plan = LaunchPlan(
        execution=execution,
        units=[UnitLaunch(index=i, generation=0) for i in range(spec["units_per_try"])],
        request=spec["request"],
    )
    try:
        result = hook.launch(plan)
    except Exception as exc:
        for i in range(spec["units_per_try"]):
            results[f"{try_number}-{i}"] = f"launch failed: {type(exc).__name__}"
        return
    for unit in result.launched:
        results[f"{try_number}-{unit.index}"] = "launched"
    for launch, error in result.refused:
        results[f"{try_number}-{launch.index}"] = error.code.value


def _official(spec: dict[str, Any], try_number: int, index: int, results: dict[str, str]) -> None:
    from airflow.providers.amazon.aws.operators.ecs import EcsRunTaskOperator

    request = spec["request"]
    operator = EcsRunTaskOperator(
        task_id=f"official-{try_number}-{index}",
        cluster=spec["cluster"],
        task_definition=request["taskDefinition"],
        overrides={},
        launch_type=request["launchType"],
        network_configuration=request["networkConfiguration"],
        tags={"bench-unit": f"{spec['run_id']}-try-{try_number}-{index}"},
        region_name=spec["region"],
        wait_for_completion=False,
        reattach=False,
        do_xcom_push=False,  # no task instance here to push to
    )
    try:
        operator.execute({})
        results[f"{try_number}-{index}"] = "launched"
    except Exception as exc:
        results[f"{try_number}-{index}"] = type(exc).__name__


def main() -> None:
    with open(sys.argv[1]) as spec_file:
        spec: dict[str, Any] = json.load(spec_file)
    results: dict[str, str] = {}
    threads: list[threading.Thread] = []
    for try_number in spec["tries"]:
        if spec["variant"] == "official":
            for index in range(spec["units_per_try"]):
                threads.append(threading.Thread(target=_official, args=(spec, try_number, index, results)))
        else:
            threads.append(threading.Thread(target=_ours, args=(spec, try_number, results)))
    # Import and build what the threads need first, so that the wall time is the launches'.
    if spec["variant"] == "official":
        import airflow.providers.amazon.aws.operators.ecs  # noqa: F401
    else:
        import airflow_compute_provider.hooks.ecs  # noqa: F401
    start_at = float(spec["start_at"])
    time.sleep(max(0.0, start_at - time.time()))
    started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _protocol.write(json.dumps({"units": results, "started": started, "ended": time.time()}) + "\n")
    _protocol.flush()


if __name__ == "__main__":
    main()
