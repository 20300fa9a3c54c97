"""``ComputeErrorBranchOperator``: follow a branch chosen by the error a compute task failed with.

    provision >> route >> [raise_quota, fix_config, page_oncall, report_ok]
    provision >> watcher          # trigger_rule="one_failed": fails, so the run stays failed

The branch runs once the compute task is done, whatever its state (``all_done``), and picks:

    compute task succeeded        -> on_success
    failed with a compute_error   -> routes[code], else routes[classification], else default
    failed without one            -> default (a killed worker records nothing)
    skipped / upstream_failed     -> no branch (the compute never ran)

Following ``None`` skips every branch. A handler that runs does not make a failed compute
task succeed: a leaf with ``trigger_rule="one_failed"`` downstream of the compute task keeps
the DAG run failed (the README shows the pattern).

Routes are checked twice. At construction: keys are known codes or classifications, targets are
task ids, and a compute task already in the DAG is not mapped. Once the DAG is complete: the
compute task exists, is not mapped and is upstream of the branch, and every target exists and
is directly downstream. Airflow offers no per-task "DAG finished" hook, so the second check
runs in ``resolve_template_files``, which the DagBag calls on every task of a DAG it loads
(after the whole file ran, before the DAG is stored): a broken route is an import error of
the DAG file, with the message below. ``execute`` checks again, for DAGs never loaded by a
DagBag.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow.sdk import TriggerRule

from airflow_compute_provider.errors import ComputeConfigError, ComputeError
from airflow_compute_provider.lifecycle.xcom import get_compute_error
from airflow_compute_provider.policy.rules import RuleKey, parse_rule_key

try:
    from airflow.sdk import BaseBranchOperator
except ImportError:  # Airflow < 3.2 keeps it in the standard provider
    from airflow.providers.standard.operators.branch import (  # type: ignore[no-redef]
        BaseBranchOperator,
    )

Targets = tuple[str, ...]

_NOT_RUN = {"skipped", "upstream_failed", "removed"}


class ComputeErrorBranchOperator(BaseBranchOperator):
    """Route on the ``ComputeError`` of an upstream compute task.

    :param compute_task_id: the compute task whose outcome picks the branch; it must be
        upstream of this task and not mapped.
    :param routes: ``{code or classification: task id or list of task ids}``; a code route
        beats a classification route. Task group ids work as targets too.
    :param on_success: what to follow when the compute task succeeded; ``None`` skips every
        branch.
    :param default: what to follow for a failure no route names; ``None`` skips every branch.
    """

    ui_color = "#fde8e8"

    def __init__(
        self,
        *,
        compute_task_id: str,
        routes: Mapping[str | RuleKey, str | Sequence[str]],
        on_success: str | Sequence[str] | None = None,
        default: str | Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        rule = kwargs.pop("trigger_rule", TriggerRule.ALL_DONE)
        if TriggerRule(rule) is not TriggerRule.ALL_DONE:
            raise ComputeConfigError(
                f"is always all_done: the branch runs whatever the compute task's state (got {rule!r})",
                argument="trigger_rule",
            )
        super().__init__(trigger_rule=TriggerRule.ALL_DONE, **kwargs)
        if not isinstance(compute_task_id, str) or not compute_task_id:
            raise ComputeConfigError("must be a task id", argument="compute_task_id")
        if compute_task_id == self.task_id:
            raise ComputeConfigError("must name another task than the branch", argument="compute_task_id")
        self.compute_task_id = compute_task_id
        self.routes: dict[RuleKey, Targets] = _parse_routes(routes)
        self.on_success: Targets | None = _targets(on_success, "on_success", optional=True)
        self.default: Targets | None = _targets(default, "default", optional=True)
        for argument, targets in self._all_targets():
            if self.task_id in targets or compute_task_id in targets:
                raise ComputeConfigError(
                    "must name handler tasks, not the branch or the compute task", argument=argument
                )
        self.check_routes(complete=False)

    # -- validation -----------------------------------------------------------------------------

    def _all_targets(self) -> list[tuple[str, Targets]]:
        found = [(f"routes[{key.value!r}]", t) for key, t in self.routes.items()]
        found += [(name, t) for name, t in (("on_success", self.on_success), ("default", self.default)) if t]
        return found

    def check_routes(self, *, complete: bool = True) -> None:
        """Raise ComputeConfigError for a route the DAG cannot follow.

        With ``complete=False`` (at construction) only what is already known is checked: tasks
        and dependencies added later are not errors yet.
        """
        dag = self.dag if self.has_dag() else None
        if dag is None:
            if complete:
                raise ComputeConfigError(f"{self.task_id!r} is not in a DAG", argument="compute_task_id")
            return
        where = f"in DAG {dag.dag_id!r}"
        compute = dag.task_dict.get(self.compute_task_id)
        if compute is not None and _is_mapped(compute):
            raise ComputeConfigError(
                f"{self.compute_task_id!r} is mapped; the branch routes on one compute task's error "
                "(route inside the mapped group, or on a task that is not mapped)",
                argument="compute_task_id",
            )
        if not complete:
            return
        if compute is None:
            raise ComputeConfigError(f"no task {self.compute_task_id!r} {where}", argument="compute_task_id")
        if self.compute_task_id not in self.get_flat_relative_ids(upstream=True):
            raise ComputeConfigError(
                f"{self.compute_task_id!r} must be upstream of {self.task_id!r} {where} "
                f"(write {self.compute_task_id} >> {self.task_id})",
                argument="compute_task_id",
            )
        downstream = set(self.downstream_task_ids)
        for argument, targets in self._all_targets():
            for target in targets:
                roots = _target_roots(dag, target)
                if roots is None:
                    raise ComputeConfigError(f"no task or task group {target!r} {where}", argument=argument)
                if not roots or not set(roots) <= downstream:
                    raise ComputeConfigError(
                        f"{target!r} must be directly downstream of {self.task_id!r} {where} "
                        f"(write {self.task_id} >> {target})",
                        argument=argument,
                    )

    def resolve_template_files(self) -> None:
        # The DagBag calls this on every task once the DAG file has run: the DAG is complete.
        super().resolve_template_files()
        self.check_routes()

    # -- choosing -------------------------------------------------------------------------------

    def choose_branch(self, context: Any) -> str | Iterable[str] | None:
        self.check_routes()
        state = _task_state(context, self.compute_task_id)
        error = None
        if state not in _NOT_RUN and state != "success":
            try:
                error = get_compute_error(context, self.compute_task_id)
            except ValueError:
                self.log.exception("unreadable compute_error of %r; treated as none", self.compute_task_id)
        route = self.route_for(state, error)
        if route.targets is None:
            self.log.info("%s: rule %s, no branch followed", route.why, route.rule)
        else:
            self.log.info("%s: rule %s -> %s", route.why, route.rule, list(route.targets))
        return route.targets

    def route_for(self, state: str | None, error: ComputeError | None) -> Route:
        """The branch for the compute task's final ``state`` (``None``: unknown) and its error."""
        task = repr(self.compute_task_id)
        if state == "success":
            return Route("on_success", self.on_success, f"{task} succeeded")
        if state in _NOT_RUN:
            return Route("(did not run)", None, f"{task} did not run ({state})")
        if error is None:
            if state is None:
                # Airflow could not tell the state; with no error recorded, it succeeded.
                return Route("on_success", self.on_success, f"{task} recorded no compute_error")
            return Route("default", self.default, f"{task} {state} without a compute_error")
        what = f"{task} failed with {error.code.value} ({error.classification.value})"
        for key in (error.code, error.classification):
            if key in self.routes:
                return Route(f"routes[{key.value!r}]", self.routes[key], what)
        return Route("default", self.default, f"{what}, which no route names")


@dataclass(frozen=True)
class Route:
    """The branch chosen, the rule that chose it (as the author wrote it) and why, for the log."""

    rule: str
    targets: Targets | None
    why: str


def _parse_routes(routes: Mapping[Any, Any]) -> dict[RuleKey, Targets]:
    if not isinstance(routes, Mapping):
        raise ComputeConfigError("must be a mapping of code or classification to task ids", argument="routes")
    parsed: dict[RuleKey, Targets] = {}
    for key, value in routes.items():
        rule_key = parse_rule_key(key, argument="routes")
        targets = _targets(value, f"routes[{rule_key.value!r}]", optional=False)
        assert targets is not None
        parsed[rule_key] = targets
    return parsed


def _targets(value: Any, argument: str, *, optional: bool) -> Targets | None:
    if value is None and optional:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Sequence) or not items or not all(isinstance(i, str) and i for i in items):
        raise ComputeConfigError(
            f"must be a task id or a non-empty list of task ids, got {value!r}", argument=argument
        )
    return tuple(items)


def _is_mapped(task: Any) -> bool:
    if getattr(task, "is_mapped", False):
        return True
    group = getattr(task, "get_closest_mapped_task_group", None)
    return callable(group) and group() is not None


def _target_roots(dag: Any, target: str) -> list[str] | None:
    """The task ids a branch to ``target`` starts (a group starts at its roots); ``None`` if unknown."""
    if target in dag.task_dict:
        return [target]
    group = dag.task_group_dict.get(target)
    if group is None:
        return None
    return [root.task_id for root in group.roots]


def _task_state(context: Any, task_id: str) -> str | None:
    """The compute task's state in this run, or ``None`` when Airflow cannot say."""
    ti = context["ti"]
    try:
        states = ti.get_task_states(dag_id=ti.dag_id, task_ids=[task_id], run_ids=[ti.run_id])
    except Exception:
        return None
    state = (states or {}).get(ti.run_id, {}).get(task_id)
    return str(getattr(state, "value", state)) if state is not None else None


__all__ = ["ComputeErrorBranchOperator", "Route", "get_compute_error"]
