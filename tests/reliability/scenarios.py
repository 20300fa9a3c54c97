"""The chaos suite's operations: what each one is, how the provider is told to play it, and
the outcome it must end with whatever the wire does to its requests.

    Scenario        the kind of operation, and the outcome it dictates:

        success               every unit exits 0                -> success, units succeeded
        running               wait_for="running", units stay up  -> success, units running
        container_failed      the essential container exits 1    -> CONTAINER_FAILED
        image_missing         the image does not exist           -> IMAGE_NOT_FOUND
        partial_rollback      unit 2 of 3 refused for quota      -> PARTIAL_FAILURE, rolled back
        partial_retry_failed  unit 2 of 3 refused, retriable     -> success on the next try,
                                                                    only unit 2 relaunched
        timeout               units never finish, 1 s timeout    -> OPERATION_TIMEOUT, left running
        access_denied         the launch is refused, its answer  -> PERMISSION_DENIED, tenant held
                              echoing a secret of the request       for investigation (the
                              (the distributed soak alone: its      distributed soak's proxies
                              own connection to an echo proxy)      answer for the provider)

    Op              one operation: its scenario, tenant, provider, unit count, deferrable or not
    plan(...)       a mix of ops for one provider, deferrable and blocking alternating
    ecs_setup / kube_setup
                    tell moto (task scripts, RunTask answers) or the node simulator (pod
                    scripts, a quota or a foreign pod holding a unit's name) how to play an op
    check(...)      the outcome the op ended with, against the one its scenario dictates;
                    returns what is wrong (nothing when it is right)

moto and the node simulator play the provider side of the scenarios (ECS cannot run here; the
simulator stands in for the kubelet); everything between the DAG and the provider API is real.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_compute_provider.hooks import ecs_tags
from airflow_compute_provider.hooks.base import exec_key
from airflow_compute_provider.hooks.kubernetes_pods import pod_name
from airflow_compute_provider.state.status import OperationStatus, TenantStatus
from tests.harness.ecs_script import RUNS_FOREVER, TaskScript, exited, image_not_found
from tests.harness.nodesim import SCRIPT_ANNOTATION
from tests.reliability.dags import Code, Task

QUOTA_REFUSAL = "You've reached the limit on the number of tasks you can run concurrently"


class Scenario(enum.StrEnum):
    SUCCESS = "success"
    RUNNING = "running"
    CONTAINER_FAILED = "container_failed"
    IMAGE_MISSING = "image_missing"
    PARTIAL_ROLLBACK = "partial_rollback"
    PARTIAL_RETRY_FAILED = "partial_retry_failed"
    TIMEOUT = "timeout"
    ACCESS_DENIED = "access_denied"


#: how many ops of each scenario make up 50
MIX: Mapping[Scenario, int] = {
    Scenario.SUCCESS: 16,
    Scenario.RUNNING: 6,
    Scenario.CONTAINER_FAILED: 8,
    Scenario.IMAGE_MISSING: 4,
    Scenario.PARTIAL_ROLLBACK: 5,
    Scenario.PARTIAL_RETRY_FAILED: 5,
    Scenario.TIMEOUT: 6,
}


#: unit counts fixed by the scenario; the others alternate between one and two units. A failure
#: of one unit while another still runs is a partial failure by design: the failure scenarios
#: have one unit, so their outcome does not depend on which pod the kubelet finishes first.
_COUNTS: Mapping[Scenario, int] = {
    Scenario.PARTIAL_ROLLBACK: 3,
    Scenario.PARTIAL_RETRY_FAILED: 3,
    Scenario.CONTAINER_FAILED: 1,
    Scenario.IMAGE_MISSING: 1,
}


@dataclass(frozen=True)
class Op:
    number: int
    provider: str  # "ecs" | "kubernetes"
    scenario: Scenario
    count: int
    deferrable: bool
    prefix: str

    @property
    def task_id(self) -> str:
        return f"op_{self.number:03d}_{self.scenario.value}"

    @property
    def tenant_id(self) -> str:
        return f"{self.prefix}-{self.number:03d}"

    @property
    def execution_id(self) -> str:
        # explicit, so the test knows the exec key (and so the names) before the run
        return f"chaos:{self.tenant_id}:{self.scenario.value}"

    @property
    def key(self) -> str:
        return exec_key(self.tenant_id, self.execution_id)


def plan(provider: str, prefix: str, mix: Mapping[Scenario, int] = MIX) -> list[Op]:
    """The ops of one provider, scenarios interleaved so that no kind runs all at once."""
    queues = {s: n for s, n in mix.items()}
    ops: list[Op] = []
    while any(queues.values()):
        for scenario in Scenario:
            if queues.get(scenario, 0) <= 0:
                continue
            queues[scenario] -= 1
            number = len(ops)
            count = _COUNTS.get(scenario, 1 + number % 2)
            ops.append(Op(number, provider, scenario, count, deferrable=number % 2 == 0, prefix=prefix))
    return ops


# -- the operator arguments -----------------------------------------------------------------------


def task_of(op: Op, provider_arguments: Mapping[str, Any], namespace: str | None = None) -> Task:
    arguments: dict[str, Any] = {
        "tenant_id": op.tenant_id,
        "operation": "chaos",
        "execution_id": op.execution_id,
        "count": op.count,
        "deferrable": op.deferrable,
        "poll_interval": 0.1,
        "retry_policy": Code("POLICY"),
        "retry_delay": Code("timedelta(0)"),
        "pending_grace_period": Code("timedelta(seconds=1)"),
        # a generous bound for the others: an op that never settles fails the test, not CI
        "timeout": Code(
            "timedelta(seconds=1)" if op.scenario is Scenario.TIMEOUT else "timedelta(seconds=60)"
        ),
        **provider_arguments,
    }
    if op.scenario is Scenario.RUNNING:
        arguments["wait_for"] = "running"
    if op.scenario is Scenario.PARTIAL_RETRY_FAILED:
        arguments["on_partial_failure"] = "retry_failed"
    if op.provider == "ecs":
        return Task(op.task_id, "EcsComputeOperator", arguments)
    arguments["namespace"] = namespace
    arguments["annotations"] = {SCRIPT_ANNOTATION: _pod_script(op.scenario)}
    return Task(op.task_id, "KubernetesComputeOperator", arguments)


def _pod_script(scenario: Scenario) -> str:
    return {
        Scenario.SUCCESS: "run:300ms,exit:0",
        Scenario.RUNNING: "run:forever",
        Scenario.CONTAINER_FAILED: "run:200ms,exit:1",
        Scenario.IMAGE_MISSING: "waiting:ErrImagePull",
        Scenario.PARTIAL_ROLLBACK: "run:forever",
        Scenario.PARTIAL_RETRY_FAILED: "run:1s,exit:0",
        Scenario.TIMEOUT: "run:forever",
        Scenario.ACCESS_DENIED: "run:300ms,exit:0",  # never created: the create is refused
    }[scenario]


# -- the provider side --------------------------------------------------------------------------


def _request_tag(body: Mapping[str, Any], key: str) -> str | None:
    return next((t.get("value") for t in body.get("tags") or [] if t.get("key") == key), None)


def _unit_request(op: Op, index: int, generation: int | None) -> Callable[[Mapping[str, Any]], bool]:
    def matches(body: Mapping[str, Any]) -> bool:
        return (
            _request_tag(body, ecs_tags.EXEC_KEY_TAG) == op.key
            and _request_tag(body, ecs_tags.UNIT_INDEX_TAG) == str(index)
            and (generation is None or _request_tag(body, ecs_tags.GENERATION_TAG) == str(generation))
        )

    return matches


def ecs_setup(op: Op, ecs_env: Any) -> None:
    """Script how moto plays ``op``: its tasks' lives, and the RunTask refusals."""
    scripts = {
        Scenario.SUCCESS: TaskScript(pending=1, running=1),
        Scenario.RUNNING: RUNS_FOREVER,
        Scenario.CONTAINER_FAILED: TaskScript(outcome=exited(1)),
        Scenario.IMAGE_MISSING: TaskScript(running=0, outcome=image_not_found()),
        Scenario.PARTIAL_ROLLBACK: RUNS_FOREVER,
        # units 0 and 1 must still be adoptable when the next try comes
        Scenario.PARTIAL_RETRY_FAILED: TaskScript(pending=1, running=3),
        Scenario.TIMEOUT: RUNS_FOREVER,
        Scenario.ACCESS_DENIED: TaskScript(pending=1, running=1),  # RunTask is refused
    }
    key = op.key
    ecs_env.script_tasks(
        scripts[op.scenario], count=None, where=lambda t: t.tags.get(ecs_tags.EXEC_KEY_TAG) == key
    )
    if op.scenario is Scenario.PARTIAL_ROLLBACK:
        # every generation of unit 2: a retry after a faulted try meets the same limit
        ecs_env.script_next_run_task(
            failures=[{"reason": QUOTA_REFUSAL}], where=_unit_request(op, 2, None), times=None
        )
    elif op.scenario is Scenario.PARTIAL_RETRY_FAILED:
        ecs_env.script_next_run_task(
            failures=[{"reason": "RESOURCE:CPU"}], where=_unit_request(op, 2, 1), times=None
        )


def foreign_pod(op: Op, namespace: str) -> dict[str, Any]:
    """A pod that is not ours but holds the name of ``op``'s unit 2, generation 1."""
    return {
        "metadata": {"name": pod_name(op.key, 2, 1), "namespace": namespace, "labels": {"app": "foreign"}},
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


# -- the outcome ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ended:
    """What an op ended with, as Airflow, XCom, the state store and the provider saw it."""

    task_state: str | None
    result: Any
    error: Any
    tenant_status: TenantStatus | None
    last_operation: OperationStatus | None
    #: this op's units on the provider (``audit.ProviderUnit``)
    units: Sequence[Any]


def check(op: Op, ended: Ended) -> list[str]:
    """What is wrong with how ``op`` ended (nothing when it ended as its scenario dictates)."""
    wrong: list[str] = []

    def expect(what: str, got: Any, wanted: Any) -> None:
        if got != wanted:
            wrong.append(f"{op.task_id} ({op.tenant_id}): {what} is {got!r}, not {wanted!r}")

    scenario = op.scenario
    alive = sorted(u.index for u in ended.units if u.alive)
    if scenario in (Scenario.SUCCESS, Scenario.RUNNING, Scenario.PARTIAL_RETRY_FAILED):
        expect("task state", ended.task_state, "success")
        expect("tenant", ended.tenant_status, TenantStatus.READY)
        expect("last try", ended.last_operation, OperationStatus.SUCCEEDED)
        units = (ended.result or {}).get("units") or []
        wanted_status = "running" if scenario is Scenario.RUNNING else "succeeded"
        expect(
            "units",
            sorted((u["index"], u["status"]) for u in units),
            [(i, wanted_status) for i in range(op.count)],
        )
        if scenario is Scenario.RUNNING:
            expect("units alive", alive, list(range(op.count)))
        if scenario is Scenario.PARTIAL_RETRY_FAILED:
            generations = sorted((u.index, u.generation) for u in ended.units)
            expect("unit generations", generations, [(0, 1), (1, 1), (2, 2)])
        return wrong

    expect("task state", ended.task_state, "failed")
    expect("last try", ended.last_operation, OperationStatus.FAILED)
    error = ended.error or {}
    codes = {
        Scenario.CONTAINER_FAILED: "CONTAINER_FAILED",
        Scenario.IMAGE_MISSING: "IMAGE_NOT_FOUND",
        Scenario.PARTIAL_ROLLBACK: "PARTIAL_FAILURE",
        Scenario.TIMEOUT: "OPERATION_TIMEOUT",
        Scenario.ACCESS_DENIED: "PERMISSION_DENIED",
    }
    expect("error code", error.get("code"), codes[scenario])
    if scenario is Scenario.TIMEOUT:
        # retriable, and nothing retried it: the tenant is free, the work left running
        expect("tenant", ended.tenant_status, TenantStatus.RETRY_PENDING)
        expect("cleanup", (error.get("cleanup") or {}).get("action"), "left_running")
        expect("units alive", alive, list(range(op.count)))
        return wrong
    expect("tenant", ended.tenant_status, TenantStatus.NEEDS_INVESTIGATION)
    expect("units alive", alive, [])
    if scenario is Scenario.ACCESS_DENIED:
        expect("classification", error.get("classification"), "requires_manual_intervention")
        expect("units", ended.units, [])
    if scenario is Scenario.CONTAINER_FAILED:
        expect("exit code", (error.get("root_cause") or {}).get("exit_code"), 1)
    if scenario is Scenario.PARTIAL_ROLLBACK:
        expect("cleanup", (error.get("cleanup") or {}).get("action"), "rolled_back")
        units = error.get("units") or {}
        failed = {u["index"]: (u.get("error") or {}).get("code") for u in units.get("failed", [])}
        # unit 2 meets the limit; on Kubernetes a create retried after a lost answer is charged
        # against the quota again until the quota controller catches up, so unit 1 may meet it too
        expect("unit 2's failure", failed.get(2), "QUOTA_EXCEEDED")
        expect("failure codes", set(failed.values()), {"QUOTA_EXCEEDED"})
        expect("a partial launch", len(failed) < op.count, True)
    return wrong
