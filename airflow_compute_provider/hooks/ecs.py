"""``EcsComputeHook``: the ECS backend of the compute lifecycle, on the Amazon provider's ``EcsHook``.

It implements ``ComputeBackend`` (``hooks/base.py``) with the ECS API, through the clients
``EcsHook`` builds (same ``aws_conn_id``, region, endpoint from the connection and botocore
config), boto3 for the sync calls and aiobotocore for ``adescribe``:

    launch(plan)         one RunTask per unit (count=1, startedBy=exec key, clientToken per unit
                         and generation, our tags next to the user's), a bounded thread pool
    find(execution)      ListTasks by startedBy (RUNNING, then STOPPED), DescribeTasks with tags,
                         keeping only tasks whose tags name this tenant and execution
    describe(units)      DescribeTasks in batches of 100 -> UnitStatus (see ``ecs_status``)
    stop(units, reason)  StopTask per unit; a task already stopped or gone is not an error
    adescribe(units)     describe, async

The helpers: ``ecs_tags`` (tag names and matching), ``ecs_status`` (task -> UnitStatus),
``ecs_retry`` (exceptions -> ComputeError, the one retry layer: botocore's retries are off, every
request is paced by the process-wide budget of its operation group, ``hooks/budget.py``).

Failures are data where they concern one unit (``LaunchResult.refused``, ``UnitStatus.error``,
``stop``'s list); an error that makes a whole call impossible leaves as
``ComputeOperationError``. No botocore exception leaves this module raw: everything passes
through the normalizers.

Request bodies are never logged here: overrides carry user environment values.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from airflow.providers.amazon.aws.hooks.ecs import EcsHook
from botocore.exceptions import (
    ClientError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
)

from airflow_compute_provider.errors import (
    ComputeConfigError,
    ComputeError,
    ComputeOperationError,
    ErrorCode,
)
from airflow_compute_provider.errors.model import RootCause
from airflow_compute_provider.hooks import ecs_status, ecs_tags, ecs_wire
from airflow_compute_provider.hooks.base import (
    ExecutionRef,
    LaunchPlan,
    LaunchResult,
    Unit,
    UnitLaunch,
    UnitStatus,
)
from airflow_compute_provider.hooks.budget import AdaptiveBudget
from airflow_compute_provider.hooks.ecs_retry import (
    LAUNCH_RETRY,
    STOP_RETRY,
    as_compute_error,
    async_retrying,
    request_budget,
    retrying,
    without_botocore_retries,
)
from airflow_compute_provider.hooks.error_context import ErrorContext, error_context
from airflow_compute_provider.normalize import ecs as normalize_ecs
from airflow_compute_provider.observability import log_raw_response

PROVIDER = "ecs"
#: StopTask's ``reason`` is cut at 255 characters by ECS; we cut it first.
MAX_STOP_REASON = 255
#: RunTask kwargs the hook owns: one unit per request, and the ids that make it findable.
RESERVED_REQUEST_KEYS = ("count", "startedBy", "clientToken")
_LIST_PAGE = 100
_TASK_DEFINITION_CACHE = 1024

# Raised by botocore before any request leaves: they hit every unit alike, so a launch that
# started nothing because of one of them fails as a whole.
_CALL_WIDE_ERRORS = (
    NoCredentialsError,
    PartialCredentialsError,
    NoRegionError,
    ParamValidationError,
    ProfileNotFound,
)

# Essential container names by task definition ARN. A revision never changes, so entries never
# go stale; the cache is shared by every hook in the process (a triggerer rebuilds hooks often).
_essentials_cache: dict[str, frozenset[str]] = {}


@dataclass(frozen=True)
class _LaunchOutcome:
    launch: UnitLaunch
    unit: Unit | None = None
    error: ComputeError | None = None
    call_wide: bool = False


class EcsComputeHook(EcsHook):  # type: ignore[misc]
    """The ECS compute backend.

    :param aws_conn_id: the Airflow AWS connection (its extra may carry ``endpoint_url``).
    :param region_name: the region; ``None`` takes the connection's.
    :param cluster: the cluster name or ARN every unit runs on.
    :param botocore_config: botocore ``Config`` kwargs (JSON-safe, so a trigger can rebuild it).
    :param max_launch_concurrency: RunTask requests in flight at once.
    """

    provider = PROVIDER
    refusal_frees_token = False  # RunTask answers a client token once, for 24 hours

    def __init__(
        self,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        *,
        cluster: str,
        botocore_config: dict[str, Any] | None = None,
        max_launch_concurrency: int = 8,
    ) -> None:
        if not isinstance(cluster, str) or not cluster:
            raise ComputeConfigError("a cluster name or ARN is required", argument="cluster")
        if isinstance(max_launch_concurrency, bool) or not isinstance(max_launch_concurrency, int):
            raise ComputeConfigError("must be an integer", argument="max_launch_concurrency")
        if max_launch_concurrency < 1:
            raise ComputeConfigError("must be at least 1", argument="max_launch_concurrency")
        if botocore_config is not None:
            if not isinstance(botocore_config, dict):
                raise ComputeConfigError(
                    "must be a dict of botocore Config kwargs", argument="botocore_config"
                )
            try:
                json.dumps(botocore_config)
            except (TypeError, ValueError) as exc:
                raise ComputeConfigError(f"must be JSON-safe ({exc})", argument="botocore_config") from exc
        self._botocore_config = copy.deepcopy(botocore_config)
        self._region_arg = region_name
        self.cluster = cluster
        self.max_launch_concurrency = max_launch_concurrency
        self._budgets: dict[str, AdaptiveBudget] = {}
        super().__init__(
            aws_conn_id=aws_conn_id, region_name=region_name, config=copy.deepcopy(botocore_config)
        )

    @cached_property
    def conn_config(self) -> Any:
        """The connection, with botocore's retries off whatever config it or the hook carries
        (the connection's ``config_kwargs`` still apply): ours are the one retry layer."""
        wrapper = super().conn_config
        wrapper.botocore_config = without_botocore_retries(wrapper.botocore_config)
        return wrapper

    # -- identity -------------------------------------------------------------------------------

    def backend_config(self) -> dict[str, Any]:
        return {
            "aws_conn_id": self.aws_conn_id,
            "region_name": self._region_arg,
            "cluster": self.cluster,
            "botocore_config": copy.deepcopy(self._botocore_config),
            "max_launch_concurrency": self.max_launch_concurrency,
        }

    def locator(self) -> dict[str, str]:
        with self._errors():
            region = self.region_name or self.conn_region_name
        return {"region": str(region), "cluster": self.cluster}

    # -- launch ---------------------------------------------------------------------------------

    def launch(self, plan: LaunchPlan) -> LaunchResult:
        template = self._run_task_template(plan.request)
        if not plan.units:
            return LaunchResult()
        client = self._client()
        locator = self.locator()
        self.log.info(
            "Launching %d ECS task(s) on cluster %s for exec key %s",
            len(plan.units),
            self.cluster,
            plan.execution.key,
        )

        def launch_one(unit: UnitLaunch) -> _LaunchOutcome:
            try:
                return self._launch_one(client, plan, template, unit, locator)
            except Exception as exc:
                # One unit's surprise (a malformed answer) is that unit's refusal: it must not
                # escape the pool and take the other units' launched ids with it.
                self.log.warning("Launching unit %d failed unexpectedly", unit.index, exc_info=True)
                return _LaunchOutcome(unit, error=self._error(exc, plan))

        workers = min(self.max_launch_concurrency, len(plan.units))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ecs-launch") as pool:
            outcomes = list(pool.map(launch_one, plan.units))

        launched = [o.unit for o in outcomes if o.unit is not None]
        call_wide = [o.error for o in outcomes if o.call_wide and o.error is not None]
        if call_wide and not launched:
            raise ComputeOperationError(call_wide[0])
        refused = [(o.launch, o.error) for o in outcomes if o.error is not None]
        return LaunchResult(launched=launched, refused=refused)

    def _run_task_template(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The operator's RunTask kwargs, checked before anything is sent."""
        template = dict(request)
        for key in RESERVED_REQUEST_KEYS:
            if key in template:
                raise ComputeConfigError(
                    "is set by the compute hook for every unit and may not be given", argument=key
                )
        if template.get("cluster", self.cluster) != self.cluster:
            raise ComputeConfigError(
                f"the request names cluster {template['cluster']!r} but the hook runs on {self.cluster!r}",
                argument="cluster",
            )
        if "taskDefinition" not in template:
            raise ComputeConfigError("a RunTask request needs a taskDefinition", argument="taskDefinition")
        template["tags"] = ecs_tags.check_user_tags(template.get("tags"))
        template["cluster"] = self.cluster
        return template

    def _launch_one(
        self,
        client: Any,
        plan: LaunchPlan,
        template: Mapping[str, Any],
        unit: UnitLaunch,
        locator: Mapping[str, str],
    ) -> _LaunchOutcome:
        execution = plan.execution
        request = {
            **template,
            "count": 1,
            "startedBy": execution.key,
            "clientToken": unit.token(execution),
            "tags": [*template["tags"], *ecs_tags.unit_tags(execution, unit)],
        }
        try:
            response = retrying(LAUNCH_RETRY)(
                self._budget("RunTask").call, functools.partial(client.run_task, **request)
            )
        except ClientError as exc:
            adopted = self._adopt_on_conflict(client, exc, execution, unit, locator)
            if adopted is not None:
                return _LaunchOutcome(unit, unit=adopted)
            return _LaunchOutcome(unit, error=self._error(exc, plan))
        except _CALL_WIDE_ERRORS as exc:
            return _LaunchOutcome(unit, error=self._error(exc, plan), call_wide=True)
        except Exception as exc:
            return _LaunchOutcome(unit, error=self._error(exc, plan))

        tasks = response.get("tasks") or []
        if tasks:
            task = tasks[0]
            arn = task.get("taskArn") if isinstance(task, Mapping) else None
            if isinstance(arn, str) and arn:
                return _LaunchOutcome(unit, unit=Unit(unit.index, unit.generation, arn, dict(locator)))
            log_raw_response(self.log, response, what="ECS RunTask response with a task but no taskArn")
            malformed = ComputeError(
                code=ErrorCode.UNKNOWN_PROVIDER_ERROR,
                message=(
                    f"RunTask answered with a task but no taskArn for unit {unit.index}; the task may "
                    "have started (the next look on the provider finds it by its tags)"
                ),
                root_cause=RootCause(
                    provider=PROVIDER,
                    request_id=(response.get("ResponseMetadata") or {}).get("RequestId"),
                    reason="malformed_answer",
                ),
            )
            return _LaunchOutcome(unit, error=self._with_context(malformed, plan))
        failures = normalize_ecs.from_run_task_response(response)
        if failures:
            log_raw_response(self.log, response, what="ECS RunTask response with failures")
            return _LaunchOutcome(unit, error=self._with_context(failures[0], plan))
        error = ComputeError(
            code=ErrorCode.UNKNOWN_PROVIDER_ERROR,
            message="RunTask answered with neither a task nor a failure",
            root_cause=RootCause(
                provider=PROVIDER,
                request_id=(response.get("ResponseMetadata") or {}).get("RequestId"),
            ),
        )
        return _LaunchOutcome(unit, error=self._with_context(error, plan))

    def _adopt_on_conflict(
        self,
        client: Any,
        exc: ClientError,
        execution: ExecutionRef,
        unit: UnitLaunch,
        locator: Mapping[str, str],
    ) -> Unit | None:
        """Our own task behind a ConflictException for our own token: the unit is launched.

        ECS answers a reused ``clientToken`` whose request differs (a re-rendered template, say)
        with ConflictException and the ARNs of the tasks it already started for that token. If
        their tags say they are this unit and generation, the launch already happened.
        """
        if (exc.response.get("Error") or {}).get("Code") != "ConflictException":
            return None
        arns = [str(a) for a in exc.response.get("resourceIds") or []]
        if not arns:
            return None
        try:
            response = retrying()(
                self._budget("read").call,
                functools.partial(
                    client.describe_tasks,
                    cluster=self.cluster,
                    tasks=arns[: ecs_status.DESCRIBE_BATCH],
                    include=["TAGS"],
                ),
            )
        except Exception:
            self.log.warning("Could not describe the tasks of a RunTask conflict", exc_info=True)
            return None
        for task in response.get("tasks") or []:
            adopted = ecs_tags.is_unit(task, execution, unit, locator)
            if adopted is not None:
                self.log.info(
                    "Adopted task %s as unit %d (token already used)", adopted.resource_id, unit.index
                )
                return adopted
        return None

    # -- find -----------------------------------------------------------------------------------

    def find(self, execution: ExecutionRef) -> list[Unit]:
        client = self._client()
        locator = self.locator()
        arns: list[str] = []
        # RUNNING first: a task that stops between the two lists then shows up in the second
        # (twice at worst), never in neither. ECS forgets stopped tasks after about an hour, so
        # for finished units the ledger, not this, is the authority.
        for desired_status in ("RUNNING", "STOPPED"):
            for arn in self._list_tasks(client, execution.key, desired_status):
                if arn not in arns:
                    arns.append(arn)
        units: list[Unit] = []
        for start in range(0, len(arns), ecs_status.DESCRIBE_BATCH):
            response = self._call(
                client.describe_tasks,
                cluster=self.cluster,
                tasks=arns[start : start + ecs_status.DESCRIBE_BATCH],
                include=["TAGS"],
            )
            for task in response.get("tasks") or []:
                unit = ecs_tags.unit_of(task, execution, locator)
                if unit is not None:
                    units.append(unit)
        return ecs_tags.sorted_units(units)

    def _list_tasks(self, client: Any, started_by: str, desired_status: str) -> list[str]:
        arns: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {
                "cluster": self.cluster,
                "startedBy": started_by,
                "desiredStatus": desired_status,
                "maxResults": _LIST_PAGE,
            }
            if token:
                kwargs["nextToken"] = token
            response = self._call(client.list_tasks, **kwargs)
            arns.extend(str(a) for a in response.get("taskArns") or [])
            token = response.get("nextToken")
            if not token:
                return arns

    # -- describe -------------------------------------------------------------------------------

    def describe(self, units: Sequence[Unit]) -> list[UnitStatus]:
        if not units:
            return []
        client = self._client()
        tasks: dict[str, Mapping[str, Any]] = {}
        for cluster, arns in ecs_status.describe_batches(units, self.cluster):
            response = self._call(client.describe_tasks, cluster=cluster, tasks=arns)
            tasks.update(self._described(response))
        essentials = {
            arn: self._essentials(client, arn) for arn in self._task_definitions_to_look_up(tasks.values())
        }
        return self._statuses(units, tasks, essentials)

    async def adescribe(self, units: Sequence[Unit]) -> list[UnitStatus]:
        statuses, _tasks = await self.adescribe_tasks(units)
        return statuses

    async def adescribe_tasks(
        self, units: Sequence[Unit]
    ) -> tuple[list[UnitStatus], dict[str, Mapping[str, Any]]]:
        """``adescribe``, and the described tasks by ARN (the ECS events source keeps them)."""
        if not units:
            return [], {}
        # Building or closing the aiobotocore client (credentials, endpoint) may fail too.
        with self._errors():
            async with await self.get_async_conn() as client:
                ecs_wire.lean_describe_tasks(client)
                tasks: dict[str, Mapping[str, Any]] = {}
                for cluster, arns in ecs_status.describe_batches(units, self.cluster):
                    response = await self._acall(client.describe_tasks, cluster=cluster, tasks=arns)
                    tasks.update(self._described(response))
                essentials = {
                    arn: await self._aessentials(client, arn)
                    for arn in self._task_definitions_to_look_up(tasks.values())
                }
        return self._statuses(units, tasks, essentials), tasks

    async def aessentials(self, task_definition_arn: str) -> frozenset[str] | None:
        """The essential container names of a task definition (cached for the process)."""
        cached = _essentials_cache.get(task_definition_arn)
        if cached is not None:
            return cached
        async with await self.get_async_conn() as client:
            response: Mapping[str, Any] = await self._acall(
                client.describe_task_definition, taskDefinition=task_definition_arn
            )
        return _remember_essentials(task_definition_arn, response)

    def _described(self, response: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
        """The tasks of one DescribeTasks answer by ARN; a failure other than MISSING raises."""
        _missing, others = ecs_status.split_failures(response.get("failures") or [])
        if others:
            errors = normalize_ecs.from_run_task_response({"failures": list(others)})
            raise ComputeOperationError(errors[0] if errors else self._error(RuntimeError(str(others[0]))))
        return {str(t["taskArn"]): t for t in response.get("tasks") or []}

    @staticmethod
    def _task_definitions_to_look_up(tasks: Any) -> list[str]:
        arns = {str(t["taskDefinitionArn"]) for t in tasks if ecs_status.needs_task_definition(t)}
        return sorted(arns - _essentials_cache.keys())

    def _statuses(
        self,
        units: Sequence[Unit],
        tasks: Mapping[str, Mapping[str, Any]],
        essentials: Mapping[str, frozenset[str] | None],
    ) -> list[UnitStatus]:
        statuses = []
        for unit in units:
            task = tasks.get(unit.resource_id)
            if task is None:
                # In failures[] as MISSING, or (moto) simply left out: ECS no longer knows it.
                statuses.append(ecs_status.vanished(unit))
                continue
            td_arn = str(task.get("taskDefinitionArn") or "")
            essential = essentials.get(td_arn) or _essentials_cache.get(td_arn)
            status = ecs_status.status_of(unit, task, essential)
            if status.error is not None:
                log_raw_response(self.log, task, what="ECS task that failed (DescribeTasks)")
            statuses.append(status)
        return statuses

    def _essentials(self, client: Any, task_definition_arn: str) -> frozenset[str] | None:
        try:
            response = self._call(client.describe_task_definition, taskDefinition=task_definition_arn)
        except ComputeOperationError as exc:
            self._essentials_unknown(task_definition_arn, exc)
            return None
        return _remember_essentials(task_definition_arn, response)

    async def _aessentials(self, client: Any, task_definition_arn: str) -> frozenset[str] | None:
        try:
            response: Mapping[str, Any] = await self._acall(
                client.describe_task_definition, taskDefinition=task_definition_arn
            )
        except ComputeOperationError as exc:
            self._essentials_unknown(task_definition_arn, exc)
            return None
        return _remember_essentials(task_definition_arn, response)

    def _essentials_unknown(self, task_definition_arn: str, exc: ComputeOperationError) -> None:
        # Exit codes fall back to "first non-zero container"; not worth failing a status call.
        self.log.warning(
            "Could not read task definition %s (%s); exit codes may name a non-essential container",
            task_definition_arn,
            exc.error.code.value,
        )

    # -- stop -----------------------------------------------------------------------------------

    def stop(self, units: Sequence[Unit], reason: str) -> list[tuple[Unit, ComputeError]]:
        if not units:
            return []
        client = self._client()
        reason = reason[:MAX_STOP_REASON]

        def stop_one(unit: Unit) -> tuple[Unit, ComputeError | None]:
            return unit, self._stop_one(client, unit, reason)

        workers = min(self.max_launch_concurrency, len(units))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ecs-stop") as pool:
            results = list(pool.map(stop_one, units))
        return [(unit, error) for unit, error in results if error is not None]

    def _stop_one(self, client: Any, unit: Unit, reason: str) -> ComputeError | None:
        try:
            retrying(STOP_RETRY)(
                self._budget("StopTask").call,
                functools.partial(
                    client.stop_task,
                    cluster=unit.locator.get("cluster") or self.cluster,
                    task=unit.resource_id,
                    reason=reason,
                ),
            )
        except Exception as exc:
            if _task_already_gone(exc):
                return None
            return self._context().about(unit.resource_id).error(exc, self._normalize)
        return None

    # -- plumbing -------------------------------------------------------------------------------

    def _client(self) -> Any:
        """The boto3 ECS client ``EcsHook`` builds (cached), or why it cannot be built."""
        with self._errors():
            return self.conn

    def _budget(self, group: str) -> AdaptiveBudget:
        """The process-wide request budget of ``group`` for this hook's connection and region."""
        found = self._budgets.get(group)
        if found is None:
            try:
                region = self.region_name or self.conn_region_name
            except Exception:
                region = self._region_arg  # the call itself will say what is wrong
            found = self._budgets[group] = request_budget(self.aws_conn_id, region, group)
        return found

    def _call(self, method: Callable[..., Any], /, **kwargs: Any) -> Any:
        """A read, retried while its failure is transient; then a ComputeOperationError."""
        with self._errors():
            return retrying()(self._budget("read").call, functools.partial(method, **kwargs))

    async def _acall(self, method: Callable[..., Any], /, **kwargs: Any) -> Any:
        # aiobotocore's generated methods return awaitables without being coroutine functions,
        # which tenacity would take for sync calls: wrap them in one.
        budget = self._budget("read")

        async def attempt() -> Any:
            return await budget.acall(lambda: method(**kwargs))

        with self._errors():
            return await async_retrying()(attempt)

    def _normalize(self, exc: BaseException) -> ComputeError:
        raw = exc.response if isinstance(exc, ClientError) else repr(exc)
        log_raw_response(self.log, raw, what="ECS error response")
        return as_compute_error(exc)

    @staticmethod
    def _context(plan: LaunchPlan | None = None) -> ErrorContext:
        if plan is None:
            return ErrorContext(PROVIDER)
        return ErrorContext(PROVIDER, execution=plan.execution, operation=plan.operation or None)

    def _error(self, exc: BaseException, plan: LaunchPlan | None = None) -> ComputeError:
        return self._context(plan).error(exc, self._normalize)

    def _with_context(self, error: ComputeError, plan: LaunchPlan | None) -> ComputeError:
        return self._context(plan).stamp(error)

    def _errors(self) -> AbstractContextManager[ErrorContext]:
        """Every exception of the block leaves as a ``ComputeOperationError`` (``error_context``)."""
        return error_context(self._context(), self._normalize)


def _remember_essentials(task_definition_arn: str, response: Mapping[str, Any]) -> frozenset[str]:
    names = ecs_status.essential_names(response.get("taskDefinition") or {})
    if len(_essentials_cache) >= _TASK_DEFINITION_CACHE:
        _essentials_cache.pop(next(iter(_essentials_cache)), None)
    _essentials_cache[task_definition_arn] = names
    return names


def _task_already_gone(exc: BaseException) -> bool:
    """StopTask of a task ECS no longer knows ("The referenced task was not found.")."""
    if not isinstance(exc, ClientError):
        return False
    error = exc.response.get("Error") or {}
    message = str(error.get("Message") or "").lower()
    return (
        error.get("Code") in ("InvalidParameterException", "ClientException")
        and "task" in message
        and "not found" in message
    )
