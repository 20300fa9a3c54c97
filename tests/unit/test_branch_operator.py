"""ComputeErrorBranchOperator: route validation (at construction, once the DAG is complete, and as a
DAG import error in a real DagBag) and the choice of branch. Running it in a DAG run is
``tests/integration/test_branch_dag.py``."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from airflow.dag_processing.dagbag import DagBag
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, TaskGroup, TriggerRule, task

from airflow_compute_provider.errors import ComputeConfigError, ComputeError, ErrorCode
from airflow_compute_provider.errors.model import UnitReport, UnitsReport
from airflow_compute_provider.operators.branch import ComputeErrorBranchOperator

ROUTES = {
    "QUOTA_EXCEEDED": "raise_quota",
    "non_retriable": ["fix_config", "notify"],
    "requires_manual_intervention": "page_oncall",
}
HANDLERS = ["raise_quota", "fix_config", "notify", "page_oncall", "report_ok", "triage"]


def build(
    *,
    routes: dict[str, Any] | None = None,
    on_success: Any = "report_ok",
    default: Any = "triage",
    wire: bool = True,
    **kwargs: Any,
) -> tuple[DAG, ComputeErrorBranchOperator]:
    """compute >> route >> every handler, the shape the README recommends."""
    with DAG("branching", schedule=None) as dag:
        compute = EmptyOperator(task_id="compute")
        route = ComputeErrorBranchOperator(
            task_id="route",
            compute_task_id="compute",
            routes=ROUTES if routes is None else routes,
            on_success=on_success,
            default=default,
            **kwargs,
        )
        handlers = [EmptyOperator(task_id=t) for t in HANDLERS]
        if wire:
            compute >> route >> handlers
    return dag, route


def test_a_complete_dag_validates_and_runs_after_any_upstream_state() -> None:
    _, route = build()
    route.check_routes()
    assert route.trigger_rule is TriggerRule.ALL_DONE
    assert route.routes[ErrorCode.QUOTA_EXCEEDED] == ("raise_quota",)


def test_the_trigger_rule_is_all_done_whatever_the_dag_defaults_say() -> None:
    with DAG("defaults", schedule=None, default_args={"trigger_rule": "all_success"}):
        route = ComputeErrorBranchOperator(task_id="route", compute_task_id="compute", routes={})
    assert route.trigger_rule is TriggerRule.ALL_DONE


# -- errors at construction -------------------------------------------------------------------------

AT_CONSTRUCTION: list[tuple[str, dict[str, Any], str, str]] = [
    ("unknown code", {"routes": {"QUOTA_EXCEDED": "raise_quota"}}, "routes", "did you mean 'QUOTA_EXCEEDED'"),
    ("unknown classification", {"routes": {"transient": "triage"}}, "routes", "neither an error code"),
    ("routes not a mapping", {"routes": ["raise_quota"]}, "routes", "must be a mapping"),
    ("empty target list", {"routes": {"CONFLICT": []}}, "routes['CONFLICT']", "non-empty list"),
    ("target not a string", {"routes": {"CONFLICT": 3}}, "routes['CONFLICT']", "task id"),
    ("None as a route", {"routes": {"CONFLICT": None}}, "routes['CONFLICT']", "task id"),
    ("bad on_success", {"on_success": [""]}, "on_success", "task id"),
    ("bad default", {"default": {"a": 1}}, "default", "task id"),
    ("routing to the compute task", {"default": "compute"}, "default", "not the branch or the compute task"),
    ("routing to itself", {"routes": {"CONFLICT": "route"}}, "routes['CONFLICT']", "not the branch"),
    ("another trigger rule", {"trigger_rule": "all_success"}, "trigger_rule", "always all_done"),
]


@pytest.mark.parametrize(
    ("kwargs", "argument", "message"), [c[1:] for c in AT_CONSTRUCTION], ids=[c[0] for c in AT_CONSTRUCTION]
)
def test_static_mistakes_fail_at_construction(kwargs: dict[str, Any], argument: str, message: str) -> None:
    with pytest.raises(ComputeConfigError, match=message) as raised:
        build(**kwargs)
    assert raised.value.argument == argument


def test_compute_task_must_be_another_task() -> None:
    with pytest.raises(ComputeConfigError, match="another task") as raised:
        ComputeErrorBranchOperator(task_id="route", compute_task_id="route", routes={})
    assert raised.value.argument == "compute_task_id"


def test_a_mapped_compute_task_already_in_the_dag_fails_at_construction() -> None:
    with DAG("mapped_first", schedule=None):
        EmptyOperator.partial(task_id="compute").expand(doc=["a", "b"])
        with pytest.raises(ComputeConfigError, match="is mapped") as raised:
            ComputeErrorBranchOperator(task_id="route", compute_task_id="compute", routes={})
    assert raised.value.argument == "compute_task_id"


# -- errors once the DAG is complete ----------------------------------------------------------------


def _missing_compute() -> None:
    with DAG("no_compute", schedule=None):
        route = ComputeErrorBranchOperator(task_id="route", compute_task_id="compute", routes={})
    route.check_routes()


def _not_upstream() -> None:
    _, route = build(wire=False)
    route.dag.get_task("route") >> [route.dag.get_task(t) for t in HANDLERS]
    route.check_routes()


def _target_missing() -> None:
    _, route = build(routes={"CONFLICT": "retry_later"})
    route.check_routes()


def _target_not_downstream() -> None:
    dag, route = build(wire=False)
    dag.get_task("compute") >> route >> [dag.get_task(t) for t in HANDLERS if t != "triage"]
    dag.get_task("raise_quota") >> dag.get_task("triage")  # downstream, but not directly
    route.check_routes()


def _mapped_after_the_branch() -> None:
    with DAG("mapped_later", schedule=None):
        route = ComputeErrorBranchOperator(task_id="route", compute_task_id="compute", routes={})
        EmptyOperator.partial(task_id="compute").expand(doc=["a"]) >> route
    route.check_routes()


def _not_in_a_dag() -> None:
    ComputeErrorBranchOperator(task_id="route", compute_task_id="compute", routes={}).check_routes()


ONCE_COMPLETE: list[tuple[str, Callable[[], None], str, str]] = [
    ("compute task missing", _missing_compute, "compute_task_id", "no task 'compute' in DAG 'no_compute'"),
    ("compute task not upstream", _not_upstream, "compute_task_id", "write compute >> route"),
    ("target missing", _target_missing, "routes['CONFLICT']", "no task or task group 'retry_later'"),
    ("target not directly downstream", _target_not_downstream, "default", "write route >> triage"),
    ("mapped compute task added later", _mapped_after_the_branch, "compute_task_id", "is mapped"),
    ("not in a DAG", _not_in_a_dag, "compute_task_id", "not in a DAG"),
]


@pytest.mark.parametrize(
    ("check", "argument", "message"), [c[1:] for c in ONCE_COMPLETE], ids=[c[0] for c in ONCE_COMPLETE]
)
def test_graph_mistakes_fail_once_the_dag_is_complete(
    check: Callable[[], None], argument: str, message: str
) -> None:
    with pytest.raises(ComputeConfigError, match=message) as raised:
        check()
    assert raised.value.argument == argument


def test_targets_added_after_the_branch_are_not_errors_until_the_dag_is_complete() -> None:
    with DAG("late_targets", schedule=None):
        compute = EmptyOperator(task_id="compute")
        route = ComputeErrorBranchOperator(
            task_id="route", compute_task_id="compute", routes={"CONFLICT": "later"}
        )
        compute >> route
        with pytest.raises(ComputeConfigError, match="no task or task group 'later'"):
            route.check_routes()
        route >> EmptyOperator(task_id="later")
    route.check_routes()


def test_a_task_group_target_starts_at_its_roots() -> None:
    with DAG("groups", schedule=None):
        compute = EmptyOperator(task_id="compute")
        route = ComputeErrorBranchOperator(
            task_id="route", compute_task_id="compute", routes={"retriable": "recover"}
        )
        with TaskGroup("recover") as recover:
            EmptyOperator(task_id="wait") >> EmptyOperator(task_id="resume")
        compute >> route >> recover
    route.check_routes()
    assert route.route_for("failed", error("CONFLICT")).targets == ("recover",)


def test_the_compute_task_may_be_upstream_through_other_tasks() -> None:
    with DAG("indirect", schedule=None):
        route = ComputeErrorBranchOperator(task_id="route", compute_task_id="compute", routes={}, default="x")
        EmptyOperator(task_id="compute") >> EmptyOperator(task_id="between") >> route
        route >> EmptyOperator(task_id="x")
    route.check_routes()


# -- as a DAG import error --------------------------------------------------------------------------

DAG_FILE = """
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow_compute_provider.operators.branch import ComputeErrorBranchOperator

with DAG("{dag_id}", schedule=None):
    compute = EmptyOperator(task_id="compute")
    route = ComputeErrorBranchOperator(
        task_id="route", compute_task_id="compute", routes={{"QUOTA_EXCEEDED": "raise_quota"}}
    )
    raise_quota = EmptyOperator(task_id="raise_quota")
    compute >> route
    {extra}
"""


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ("route >> raise_quota", None),
        ("", "'raise_quota' must be directly downstream of 'route' in DAG 'routes_file'"),
    ],
    ids=["valid", "target not wired"],
)
def test_a_broken_route_is_an_import_error_of_the_dag_file(
    tmp_path: Path, extra: str, error: str | None
) -> None:
    dag_file = tmp_path / "routes_file.py"
    dag_file.write_text(textwrap.dedent(DAG_FILE.format(dag_id="routes_file", extra=extra)))
    bag = DagBag(dag_folder=str(dag_file))
    if error is None:
        assert bag.import_errors == {}
        assert list(bag.dags) == ["routes_file"]
    else:
        assert list(bag.dags) == []
        (message,) = bag.import_errors.values()
        assert message.startswith("ComputeConfigError")
        assert error in message


# -- choosing the branch ----------------------------------------------------------------------------


def error(code: str, units: UnitsReport | None = None) -> ComputeError:
    return ComputeError(code=ErrorCode(code), message=code, units=units)


def oom_partial() -> ComputeError:
    failed = [UnitReport(index=1, error=error("OUT_OF_MEMORY"))]
    return error("PARTIAL_FAILURE", UnitsReport(succeeded=[UnitReport(index=0)], failed=failed))


CHOICES: list[tuple[str, dict[str, Any], str | None, ComputeError | None, str, tuple[str, ...] | None]] = [
    ("success", {}, "success", None, "on_success", ("report_ok",)),
    ("success, on_success None", {"on_success": None}, "success", None, "on_success", None),
    ("code route", {}, "failed", error("QUOTA_EXCEEDED"), "routes['QUOTA_EXCEEDED']", ("raise_quota",)),
    (
        "code beats classification",
        {"routes": {"QUOTA_EXCEEDED": "raise_quota", "non_retriable": "fix_config"}},
        "failed",
        error("QUOTA_EXCEEDED"),
        "routes['QUOTA_EXCEEDED']",
        ("raise_quota",),
    ),
    (
        "classification route",
        {},
        "failed",
        error("IMAGE_NOT_FOUND"),
        "routes['non_retriable']",
        ("fix_config", "notify"),
    ),
    (
        "partial failure by its classification",
        {},
        "failed",
        oom_partial(),
        "routes['non_retriable']",
        ("fix_config", "notify"),
    ),
    (
        "manual",
        {},
        "failed",
        error("AUTHENTICATION_FAILED"),
        "routes['requires_manual_intervention']",
        ("page_oncall",),
    ),
    ("no route: default", {}, "failed", error("PROVIDER_THROTTLED"), "default", ("triage",)),
    ("no route, default None", {"default": None}, "failed", error("CONFLICT"), "default", None),
    ("failed without an error", {}, "failed", None, "default", ("triage",)),
    ("compute skipped", {}, "skipped", None, "(did not run)", None),
    ("compute upstream_failed", {}, "upstream_failed", None, "(did not run)", None),
    ("state unknown, no error", {}, None, None, "on_success", ("report_ok",)),
    (
        "state unknown, an error",
        {},
        None,
        error("QUOTA_EXCEEDED"),
        "routes['QUOTA_EXCEEDED']",
        ("raise_quota",),
    ),
]


@pytest.mark.parametrize("case", CHOICES, ids=[c[0] for c in CHOICES])
def test_route_for(case: tuple[Any, ...]) -> None:
    _, kwargs, state, failure, rule, targets = case
    _, route = build(**kwargs)
    chosen = route.route_for(state, failure)
    assert (chosen.rule, chosen.targets) == (rule, targets)
    if failure is not None and state != "success":
        assert f"failed with {failure.code.value} ({failure.classification.value})" in chosen.why


def test_taskflow_handlers_can_be_targets() -> None:
    with DAG("taskflow", schedule=None):

        @task
        def raise_quota() -> None:
            return None

        compute = EmptyOperator(task_id="compute")
        route = ComputeErrorBranchOperator(
            task_id="route", compute_task_id="compute", routes={"QUOTA_EXCEEDED": "raise_quota"}
        )
        compute >> route >> raise_quota()
    route.check_routes()
