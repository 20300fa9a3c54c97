"""The demo's scenarios: what the cloud does, which example DAG runs, and what must come out.

Each ``Scenario`` names an example DAG of ``dags/`` and the params it runs with, ``arrange``
scripts the cloud before the run (a throttled RunTask, a unit ECS has no capacity for, a task
that outlives the first try...), and ``Expected`` is the outcome the provider promises for it.
``verify`` checks one fact only this scenario has (how many tasks ECS ended up with, which
handler the branch followed) and says it in a few words for the table.

ECS scenarios are scripted in moto or answered on the wire by the fault proxy exactly as ECS
answers; Kubernetes scenarios use the real API server's admission (a ResourceQuota).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from demo.backends import EcsStage, KubeStage
from tests.harness.airflow_dagrun import DagRunRecord
from tests.harness.ecs import LOGGED_TASK_FAMILY

Stage = EcsStage | KubeStage

UNTOUCHED = "untouched"
# Real ECS messages; the fault proxy sends them where moto would not (see each scenario).
NOT_FARGATE = "Task definition does not support launch_type FARGATE."
CONCURRENT_TASK_LIMIT = (
    "You've reached the limit on the number of tasks you can run concurrently. "
    "For more information, see the Troubleshooting section."
)
NOT_AUTHORIZED = (
    "User: arn:aws:sts::123456789012:assumed-role/airflow-worker/i-0abc is not authorized to "
    "perform: ecs:RunTask on resource: arn:aws:ecs:us-east-1:123456789012:task-definition/"
    "compute-test-task:1 because no identity-based policy allows the ecs:RunTask action"
)


@dataclass(frozen=True)
class Expected:
    dag_run: Literal["success", "failed"]
    #: the compute error the scenario provokes, whether or not a retry recovered (None: none)
    code: str | None
    #: tries of the compute task
    attempts: int
    #: the tenant's state in the state store at the end (UNTOUCHED: the store never saw it)
    tenant: str
    #: for the routing DAG, the one handler the branch followed
    route: str | None = None


@dataclass(frozen=True)
class Verified:
    ok: bool
    detail: str


@dataclass(frozen=True)
class Finished:
    """What ``verify`` may look at once the run is over."""

    stage: Any  # EcsStage | KubeStage
    tenant: str
    record: DagRunRecord


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    provider: Literal["ecs", "kubernetes"]
    dag_id: str
    compute_task: str
    tenant: str
    expected: Expected
    arrange: Callable[[Any], None] = lambda stage: None
    verify: Callable[[Finished], Verified] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    #: the branch's handlers, for a DAG with a ComputeErrorBranchOperator
    handlers: Sequence[str] = ()


# -- ECS --------------------------------------------------------------------------------------


def _verify_success(run: Finished) -> Verified:
    tasks = run.stage.tasks_of(run.tenant)
    exits = [c.get("exitCode") for t in tasks for c in t["containers"]]
    return Verified(len(tasks) == 1 and exits == [0], f"{len(tasks)} ECS task, exit codes {exits}")


def _launch_attempts() -> int:
    # Imported when a scenario runs: the hook imports Airflow, which must not load before the
    # demo's home is prepared.
    from airflow_compute_provider.hooks.ecs_retry import LAUNCH_RETRY

    return LAUNCH_RETRY.attempts


def _arrange_throttle(stage: EcsStage) -> None:
    # Every attempt the hook makes at the first try's RunTask is throttled (it retries a throttle
    # LAUNCH_RETRY.attempts times inside the try, botocore's retries off): the try fails, and
    # the retry policy's next try launches.
    stage.proxy.add_rule(
        _ecs_error("ThrottlingException", "Rate exceeded"), operation="RunTask", times=_launch_attempts()
    )


def _verify_throttle(run: Finished) -> Verified:
    throttled = run.stage.proxy.counts.faulted["RunTask"]
    tasks = len(run.stage.tasks_of(run.tenant))
    return Verified(
        throttled == _launch_attempts() and tasks == 1,
        f"RunTask throttled {throttled}x, then {tasks} task launched",
    )


def _arrange_not_fargate(stage: EcsStage) -> None:
    # A task definition for EC2 only, run on Fargate. moto does not check compatibilities, so
    # the proxy answers RunTask as ECS does.
    stage.env.ecs.register_task_definition(
        family="tenant-provisioner-ec2",
        requiresCompatibilities=["EC2"],
        containerDefinitions=[{"name": "main", "image": "busybox", "memory": 256, "essential": True}],
    )
    stage.proxy.add_rule(_ecs_error("InvalidParameterException", NOT_FARGATE), operation="RunTask")


def _verify_not_fargate(run: Finished) -> Verified:
    refused = run.stage.proxy.counts.faulted["RunTask"]
    return Verified(refused == 1, f"ECS refused {refused} RunTask; the policy did not retry")


def _arrange_quota(stage: EcsStage) -> None:
    # ECS answers RunTask with a failures[] entry and no task, as at the account's limit.
    stage.env.script_next_run_task(
        failures=[{"arn": stage.env.cluster_arn, "reason": CONCURRENT_TASK_LIMIT}], times=None
    )


def _verify_route(handler: str, key: str) -> Callable[[Finished], Verified]:
    """The handler ran and read the error it handles (its XCom carries one of its fields)."""

    def verify(run: Finished) -> Verified:
        try:
            returned = run.record.xcom(handler)
        except KeyError:
            return Verified(False, f"{handler} returned nothing")
        states = run.record.task_states()
        return Verified(
            bool(returned.get(key)) and states.get("watcher") == "failed",
            f"{handler} got {key}={returned.get(key)!r}; the watcher kept the run failed",
        )

    return verify


def _arrange_denied(stage: EcsStage) -> None:
    stage.proxy.add_rule(_ecs_error("AccessDeniedException", NOT_AUTHORIZED), operation="RunTask")


def _arrange_partial(stage: EcsStage) -> None:
    # Unit 2's first RunTask finds no CPU capacity; units 0 and 1 start. The idempotency token
    # of unit i, generation g ends in "-u<i>-g<g>".
    stage.env.script_next_run_task(
        failures=[{"arn": stage.env.cluster_arn, "reason": "RESOURCE:CPU"}],
        where=lambda body: str(body.get("clientToken", "")).endswith("-u2-g1"),
    )


def _verify_partial(run: Finished) -> Verified:
    from airflow_compute_provider.hooks.ecs_tags import GENERATION_TAG, UNIT_INDEX_TAG

    def tag(task: dict[str, Any], key: str) -> int:
        return int(next(t["value"] for t in task["tags"] if t["key"] == key))

    tasks = run.stage.tasks_of(run.tenant)
    units = sorted((tag(t, UNIT_INDEX_TAG), tag(t, GENERATION_TAG)) for t in tasks)
    shown = ", ".join(f"unit {u} gen {g}" for u, g in units)
    return Verified(
        units == [(0, 1), (1, 1), (2, 2)], f"{len(tasks)} tasks ({shown}): only unit 2 relaunched"
    )


def _arrange_long_task(stage: EcsStage) -> None:
    # The task runs until the next try comes looking for it: the first ListTasks after the launch
    # is the second try's reconcile (the first try lists before it launches). Then it exits 0.
    # So the first try always times out and the second always finds the task done, however fast
    # or slow the machine is.
    from tests.harness.ecs_script import RUNS_FOREVER, exited

    stage.env.default_script = RUNS_FOREVER
    stopped: list[str] = []

    def finish_when_the_next_try_looks(info: Any, status: int) -> None:
        launched = stage.env.launched_task_arns()
        if launched and not stopped:
            stopped.append(launched[0])
            stage.env.stop_task(launched[0], exited(0))

    stage.proxy.after_forward(finish_when_the_next_try_looks, operation="ListTasks", times=None)


def _verify_reattached(run: Finished) -> Verified:
    run_tasks = run.stage.proxy.counts["RunTask"]
    tasks = len(run.stage.tasks_of(run.tenant))
    return Verified(run_tasks == 1 and tasks == 1, f"{run_tasks} RunTask over both tries; try 2 reattached")


#: what the crashing provisioner prints before it exits 1
CRASH_OUTPUT = (
    "provisioning tenant cyberdyne",
    "applying schema migrations 1..42",
    'ERROR: migration 42 failed: relation "accounts" already exists',
)


def _arrange_crash(stage: EcsStage) -> None:
    # The task runs the logged task definition (awslogs configured); its container prints the
    # lines above to CloudWatch Logs and exits 1.
    from tests.harness.ecs_script import TaskScript, exited

    stage.env.default_script = TaskScript(outcome=exited(1), output=CRASH_OUTPUT)


def _verify_crash(run: Finished) -> Verified:
    try:
        error = run.record.xcom("provision", key="compute_error")
    except KeyError:
        return Verified(False, "the task pushed no compute_error")
    lines = [str(line) for line in (error.get("output") or {}).get("lines") or []]
    shown = "".join(f"\n    | {line}" for line in lines)
    return Verified(lines[-1:] == [CRASH_OUTPUT[-1]], f"the error carries the container's last lines:{shown}")


def _ecs_error(code: str, message: str) -> Any:
    from tests.harness.proxy_faults import ecs_error

    return ecs_error(code, message)


# -- Kubernetes -------------------------------------------------------------------------------


def _verify_pods_succeeded(run: Finished) -> Verified:
    phases = sorted(p.status.phase for p in run.stage.pods_of(run.tenant))
    return Verified(phases == ["Succeeded", "Succeeded"], f"pods: {', '.join(phases) or 'none'}")


def _arrange_no_pods_allowed(stage: KubeStage) -> None:
    stage.set_pod_quota(0)


def _verify_no_pods(run: Finished) -> Verified:
    pods = run.stage.pods_of(run.tenant)
    return Verified(not pods, f"admission refused the pod ({len(pods)} pods exist)")


ROUTES = ("request_quota", "page_oncall", "mark_failed")

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        key="success",
        title="provision a tenant",
        provider="ecs",
        dag_id="tenant_provisioning_ecs",
        compute_task="provision",
        tenant="acme",
        expected=Expected("success", None, 1, "ready"),
        verify=_verify_success,
    ),
    Scenario(
        key="throttle",
        title="throttled, then retried",
        provider="ecs",
        dag_id="tenant_provisioning_ecs",
        compute_task="provision",
        tenant="globex",
        expected=Expected("success", "PROVIDER_THROTTLED", 2, "ready"),
        arrange=_arrange_throttle,
        verify=_verify_throttle,
    ),
    Scenario(
        key="invalid",
        title="invalid config, fails fast",
        provider="ecs",
        dag_id="tenant_provisioning_ecs",
        compute_task="provision",
        tenant="soylent",
        params={"task_definition": "tenant-provisioner-ec2"},
        expected=Expected("failed", "INVALID_CONFIGURATION", 1, "needs_investigation"),
        arrange=_arrange_not_fargate,
        verify=_verify_not_fargate,
    ),
    Scenario(
        key="quota",
        title="quota exceeded, routed",
        provider="ecs",
        dag_id="compute_error_routing",
        compute_task="provision",
        tenant="stark",
        expected=Expected("failed", "QUOTA_EXCEEDED", 1, "needs_investigation", route="request_quota"),
        arrange=_arrange_quota,
        verify=_verify_route("request_quota", "code"),
        handlers=ROUTES,
    ),
    Scenario(
        key="denied",
        title="access denied, paged",
        provider="ecs",
        dag_id="compute_error_routing",
        compute_task="provision",
        tenant="wonka",
        expected=Expected("failed", "PERMISSION_DENIED", 1, "needs_investigation", route="page_oncall"),
        arrange=_arrange_denied,
        verify=_verify_route("page_oncall", "code"),
        handlers=ROUTES,
    ),
    Scenario(
        key="partial",
        title="partial, retry_failed",
        provider="ecs",
        dag_id="fleet_partial_failure",
        compute_task="start_workers",
        tenant="initech",
        expected=Expected("success", "PARTIAL_FAILURE", 2, "ready"),
        arrange=_arrange_partial,
        verify=_verify_partial,
    ),
    Scenario(
        key="timeout",
        title="timeout, reattached",
        provider="ecs",
        dag_id="long_running_reattach",
        compute_task="migrate",
        tenant="hooli",
        expected=Expected("success", "OPERATION_TIMEOUT", 2, "ready"),
        arrange=_arrange_long_task,
        verify=_verify_reattached,
    ),
    Scenario(
        key="crash",
        title="container exits 1, last lines kept",
        provider="ecs",
        dag_id="tenant_provisioning_ecs",
        compute_task="provision",
        tenant="cyberdyne",
        params={"task_definition": LOGGED_TASK_FAMILY},
        expected=Expected("failed", "CONTAINER_FAILED", 1, "needs_investigation"),
        arrange=_arrange_crash,
        verify=_verify_crash,
    ),
    Scenario(
        key="kube-success",
        title="provision, two pods",
        provider="kubernetes",
        dag_id="tenant_provisioning_kubernetes",
        compute_task="provision",
        tenant="umbrella",
        params={"units": 2},
        expected=Expected("success", None, 1, "ready"),
        verify=_verify_pods_succeeded,
    ),
    Scenario(
        key="kube-quota",
        title="namespace quota exceeded",
        provider="kubernetes",
        dag_id="tenant_provisioning_kubernetes",
        compute_task="provision",
        tenant="wayne",
        expected=Expected("failed", "QUOTA_EXCEEDED", 1, "needs_investigation"),
        arrange=_arrange_no_pods_allowed,
        verify=_verify_no_pods,
    ),
)


def by_key(keys: Sequence[str]) -> list[Scenario]:
    known = {s.key: s for s in SCENARIOS}
    unknown = [k for k in keys if k not in known]
    if unknown:
        raise KeyError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[k] for k in keys]
