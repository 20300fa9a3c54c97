"""The error contract across providers: one scenario, run on ECS and on Kubernetes, gives the same
``compute_error``.

For each scenario both providers can express, the same DAG shape runs once with
``EcsComputeOperator`` (the moto ECS endpoint; moto stands in for the AWS cloud, which cannot run
here) and once with ``KubernetesComputeOperator`` (the real API server, scheduler and quota
controller, the node simulator as kubelet), both through ``dag.test()``. The two
``compute_error`` XComs must then

* have the same ``code`` and ``classification``;
* have the same field names: every object (the error, its root cause, its units report and
  each unit, its cleanup report) has the keys of its counterpart. An object may be null on one
  side only where the providers really differ, and the scenario says so: ECS refuses a task at
  launch (no cleanup), where Kubernetes admits the pod and deletes it once it is stuck;
* fill the fields the scenario is about on both sides (an exit code, an HTTP status...);
* validate against the published JSON Schema (``schemas/compute_error.v1.json``).

Success is compared on the task's return value instead, which has no error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import pytest

from airflow_compute_provider.errors.schema import V1_SCHEMA_FILE, published_schema
from tests.harness.ecs_script import OOM_KILLED, RUNS_FOREVER, TaskScript, exited, image_not_found
from tests.harness.proxy import FaultProxy
from tests.harness.proxy_faults import ecs_throttle, kube_throttle
from tests.integration.ecs_dags import Code, ecs_dag
from tests.integration.kubernetes_dags import KubeEnv

pytestmark = [pytest.mark.kube, pytest.mark.airflow]

#: ECS's own words when a RunTask would go over the account's concurrent-task limit
ECS_TASK_LIMIT = "You've reached the limit on the number of tasks you can run concurrently"
PODS = r"/namespaces/[^/]+/pods(\?|$)"


@dataclass
class Sides:
    """Both providers of one test, and a way to put a fault proxy in front of either."""

    ecs: Any
    kube: KubeEnv
    fault_proxy: Callable[[str], FaultProxy]

    def proxy_ecs(self) -> FaultProxy:
        proxy = self.fault_proxy(self.ecs.endpoint_url)
        self.ecs.route_through(proxy.url)
        return proxy

    def proxy_kube(self) -> FaultProxy:
        proxy = self.fault_proxy(self.kube.cluster.server)
        self.kube.route_through(proxy.url)
        return proxy


Arrange = Callable[[Sides], dict[str, Any]]


@dataclass(frozen=True)
class Scenario:
    name: str
    #: set the provider up for the scenario; returns the operator's arguments
    ecs: Arrange
    kube: Arrange
    code: str | None  # None: success
    classification: str | None = None
    #: root-cause fields both sides must fill
    facts: tuple[str, ...] = ()
    #: top-level objects allowed to be null on one side only
    may_differ: frozenset[str] = field(default_factory=frozenset)
    check: Callable[[dict[str, Any], dict[str, Any]], None] | None = None


def _ecs_script(script: TaskScript, **kwargs: Any) -> Arrange:
    def arrange(sides: Sides) -> dict[str, Any]:
        sides.ecs.default_script = script
        return kwargs

    return arrange


def _ecs_run_task_failure(reason: str, script: TaskScript = RUNS_FOREVER, **kwargs: Any) -> Arrange:
    def arrange(sides: Sides) -> dict[str, Any]:
        sides.ecs.default_script = script
        sides.ecs.script_next_run_task(failures=[{"reason": reason}])
        return kwargs

    return arrange


def _kube(**kwargs: Any) -> Arrange:
    return lambda sides: kwargs


def _kube_quota(pods: int, **kwargs: Any) -> Arrange:
    def arrange(sides: Sides) -> dict[str, Any]:
        sides.kube.set_quota(pods=pods)
        return kwargs

    return arrange


def _ecs_throttled(sides: Sides) -> dict[str, Any]:
    sides.proxy_ecs().add_rule(ecs_throttle(), operation="RunTask")
    return {}


def _kube_throttled(sides: Sides) -> dict[str, Any]:
    sides.proxy_kube().add_rule(kube_throttle(retry_after=0), method="POST", path=PODS)
    return {}


def _both_left_running(ecs: dict[str, Any], kube: dict[str, Any]) -> None:
    for error in (ecs, kube):
        assert error["cleanup"]["action"] == "left_running"
        assert len(error["cleanup"]["resources"]) == 1


def _both_rolled_back_two_of_three(ecs: dict[str, Any], kube: dict[str, Any]) -> None:
    for error in (ecs, kube):
        units = error["units"]
        assert [u["error"]["code"] for u in units["failed"]] == ["QUOTA_EXCEEDED"]
        assert len(units["pending"] + units["running"] + units["succeeded"]) == 2
        assert error["cleanup"]["action"] == "rolled_back"
        assert len(error["cleanup"]["resources"]) == 2


SCENARIOS = [
    Scenario("success", _ecs_script(TaskScript()), _kube(script="run:500ms,exit:0"), None),
    Scenario(
        "container-exit-1",
        _ecs_script(TaskScript(outcome=exited(1))),
        _kube(script="run:500ms,exit:1"),
        "CONTAINER_FAILED",
        "non_retriable",
        facts=("exit_code", "resource_id", "provider_code"),
    ),
    Scenario(
        "oom",
        _ecs_script(TaskScript(outcome=OOM_KILLED)),
        _kube(script="run:500ms,exit:137,reason:OOMKilled"),
        "OUT_OF_MEMORY",
        "non_retriable",
        facts=("exit_code", "reason", "resource_id"),
    ),
    Scenario(
        "image-not-found",
        _ecs_script(TaskScript(outcome=image_not_found())),
        _kube(script="waiting:ErrImagePull"),
        "IMAGE_NOT_FOUND",
        "non_retriable",
        facts=("reason", "provider_message", "resource_id"),
        # ECS stops the task itself; Kubernetes leaves the pod pending, and we delete it. The
        # pod that never started carries its events (``output.events``); ECS has none.
        may_differ=frozenset({"cleanup", "output", "units.failed[].error.output"}),
    ),
    Scenario(
        "throttled-api",
        _ecs_throttled,
        _kube_throttled,
        "PROVIDER_THROTTLED",
        "retriable",
        facts=("http_status", "request_id", "provider_code"),
    ),
    Scenario(
        "invalid-configuration",
        # The patched moto answers as ECS does: InvalidParameterException, no instances for EC2.
        lambda sides: {"launch_type": "EC2"},
        # The real API server refuses the pod: 422 Invalid.
        _kube(labels={"app": "not a valid label value!"}),
        "INVALID_CONFIGURATION",
        "non_retriable",
        facts=("http_status", "provider_code", "provider_message"),
    ),
    Scenario(
        "quota-exceeded",
        _ecs_run_task_failure(ECS_TASK_LIMIT),
        _kube_quota(0, script="run:forever"),
        "QUOTA_EXCEEDED",
        "non_retriable",
        facts=("provider_message",),
    ),
    Scenario(
        "insufficient-capacity",
        _ecs_run_task_failure("RESOURCE:MEMORY"),
        _kube(container_resources={"requests": {"cpu": "64", "memory": "32Mi"}}),
        "INSUFFICIENT_CAPACITY",
        "retriable",
        # No resource on ECS: the task was never created.
        facts=("provider_code", "provider_message", "reason"),
        # ECS refuses the task at launch; Kubernetes admits the pod, it stays unschedulable,
        # and we delete it after the grace period; that pod carries its events (``output``).
        may_differ=frozenset({"cleanup", "output", "units.failed[].error.output"}),
    ),
    Scenario(
        "timeout",
        _ecs_script(RUNS_FOREVER, timeout=Code("timedelta(seconds=1)")),
        _kube(script="run:forever", timeout=Code("timedelta(seconds=1)")),
        "OPERATION_TIMEOUT",
        "retriable",
        check=_both_left_running,
    ),
    Scenario(
        "partial-launch",
        _ecs_run_task_failure(ECS_TASK_LIMIT, count=3),
        _kube_quota(2, script="run:forever", count=3),
        "PARTIAL_FAILURE",
        "non_retriable",
        facts=("provider_message",),
        check=_both_rolled_back_two_of_three,
    ),
]


@pytest.fixture
def sides(
    ecs_env: Any,
    kube_env: KubeEnv,
    fault_proxy: Callable[[str], FaultProxy],
) -> Sides:
    return Sides(ecs=ecs_env, kube=kube_env, fault_proxy=fault_proxy)


def _field_names(ecs: Any, kube: Any, path: str, may_differ: frozenset[str]) -> list[str]:
    """Where the two JSON values disagree on field names (empty: they agree)."""
    if isinstance(ecs, dict) and isinstance(kube, dict):
        # an optional field (v1.1's ``output``) absent on one side is null there
        odd = {k for k in set(ecs) ^ set(kube) if f"{path}.{k}".lstrip(".") not in may_differ}
        if odd:
            return [f"{path or '<error>'}: {sorted(odd)}"]
        return [
            problem
            for key in set(ecs) & set(kube)
            for problem in _field_names(ecs[key], kube[key], f"{path}.{key}".lstrip("."), may_differ)
        ]
    if isinstance(ecs, list) and isinstance(kube, list):
        # Units of one report have one shape; compare every item with the other side's first.
        if ecs and kube:
            return [
                p for item in ecs + kube for p in _field_names(item, (kube + ecs)[0], f"{path}[]", may_differ)
            ]
        return []
    if (ecs is None) != (kube is None) and (isinstance(ecs, dict | list) or isinstance(kube, dict | list)):
        return [] if path in may_differ else [f"{path}: null on one side only"]
    return []


def _has_output(error: Any) -> bool:
    """Whether the error, or a unit's error in it, carries v1.1's ``output``."""
    units = error.get("units") or {}
    failed = [u["error"] for u in units.get("failed", []) if u.get("error")]
    return "output" in error or any(_has_output(e) for e in failed)


def _schema_validator() -> jsonschema.protocols.Validator:
    schema = published_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_both_providers_report_the_same_error(airflow_env, sides, scenario: Scenario) -> None:
    tenant = f"contract-{scenario.name}"
    dag_name = scenario.name.replace("-", "_")
    ecs_source = ecs_dag(
        f"contract_ecs_{dag_name}",
        network_configuration=sides.ecs.network_configuration,
        tenant_id=f"{tenant}-ecs",
        **scenario.ecs(sides),
    )
    kube_source = sides.kube.dag(
        f"contract_kube_{dag_name}", tenant_id=f"{tenant}-kube", **scenario.kube(sides)
    )
    ecs_run = airflow_env.run_dag(ecs_source, f"contract_ecs_{dag_name}")
    kube_run = airflow_env.run_dag(kube_source, f"contract_kube_{dag_name}")

    if scenario.code is None:
        assert (ecs_run.state(), kube_run.state()) == ("success", "success")
        for run in (ecs_run, kube_run):
            with pytest.raises(KeyError):
                run.xcom("provision", key="compute_error")
        ecs_result, kube_result = ecs_run.xcom("provision"), kube_run.xcom("provision")
        assert _field_names(ecs_result, kube_result, "", frozenset()) == []
        assert [u["status"] for u in ecs_result["units"]] == [u["status"] for u in kube_result["units"]]
        return

    assert (ecs_run.state(), kube_run.state()) == ("failed", "failed")
    ecs = ecs_run.xcom("provision", key="compute_error")
    kube = kube_run.xcom("provision", key="compute_error")

    assert (ecs["code"], ecs["classification"]) == (scenario.code, scenario.classification)
    assert (kube["code"], kube["classification"]) == (scenario.code, scenario.classification)
    assert _field_names(ecs, kube, "", scenario.may_differ) == []
    validator = _schema_validator()
    for error, provider in ((ecs, "ecs"), (kube, "kubernetes")):
        errors = sorted(validator.iter_errors(error), key=str)
        assert errors == [], f"{provider}: {errors[0].message}"
        assert error["provider"] == provider
        assert (error["operation"], error["attempt"]) == ("provision", 1)
        assert error["tenant_id"] == f"{tenant}-{'ecs' if provider == 'ecs' else 'kube'}"
        for fact in scenario.facts:
            assert error["root_cause"][fact] not in (None, ""), f"{provider} left root_cause.{fact} empty"
    definitions = published_schema()["$defs"]
    # ``output`` (v1.1) is optional: no container output is read in these scenarios (the default
    # task definition has no awslogs configuration, the node simulator serves no logs), so an
    # error without it is a v1 error too, as a v1 reader sees it. Only a pod that never started
    # carries its events there (see may_differ).
    assert set(ecs) == set(definitions["ComputeError"]["properties"]) - {"output"}
    for error in (ecs, kube):
        if not _has_output(error):
            jsonschema.validate(error, published_schema(V1_SCHEMA_FILE))
    assert set(ecs["root_cause"]) == set(definitions["RootCause"]["properties"])
    if "exit_code" in scenario.facts:
        assert ecs["root_cause"]["exit_code"] == kube["root_cause"]["exit_code"]
    if scenario.check is not None:
        scenario.check(ecs, kube)
