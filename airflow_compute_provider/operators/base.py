"""``BaseComputeOperator``: the lifecycle of one compute operation, written once for every provider.

A provider operator (``ecs.py``, ``kubernetes.py``) only says *what* to launch: its arguments,
its launch request and its backend. Everything else happens here, in this order:

    1. validate   arguments, before any provider call (ComputeConfigError, never retried)
    2. begin      the tenant's state store records the try; a held tenant refuses it
    3. reconcile  adopt what this execution already launched; relaunch only what failed
    4. launch     intent in the ledger first, then the request with its idempotency token;
                  a partial launch is rolled back, or kept for ``retry_failed``
    5. wait       deferred to ComputeStatusTrigger, or polling here: same deadline either way
    6. settle     success -> XCom result; failure -> XCom ``compute_error``, the error kept
                  with the operation, and ComputeOperationError raised

Airflow then decides whether a retry follows (``retry_policy`` on 3.3+). The tenant's state and
the log level follow that decision, in the retry and failure callbacks this operator adds
beside the DAG author's own. Work is never stopped because time ran out: a timed-out try
leaves its units running for the next try, or the reconciler, to pick up.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, ClassVar, NoReturn

from airflow.configuration import conf
from airflow.sdk import BaseOperator

try:
    from airflow.sdk.exceptions import AirflowFailException, AirflowTaskTimeout
except ImportError:  # Airflow < 3.2 keeps them in airflow.exceptions
    from airflow.exceptions import AirflowFailException, AirflowTaskTimeout  # type: ignore[no-redef]

from airflow_compute_provider import metrics
from airflow_compute_provider.errors import (
    Classification,
    ComputeConfigError,
    ComputeError,
    ComputeOperationError,
    ErrorCode,
)
from airflow_compute_provider.errors.model import CleanupReport
from airflow_compute_provider.hooks.base import (
    ComputeBackend,
    ExecutionRef,
    LaunchPlan,
    Unit,
    UnitLaunch,
    UnitPhase,
    UnitStatus,
)
from airflow_compute_provider.observability import (
    log_failure,
    log_raw_response,
    operation_logger,
    redact_error,
    register_secrets,
)
from airflow_compute_provider.operators import outcome
from airflow_compute_provider.operators.arguments import ARGUMENT_TYPES, Validator, validate_arguments
from airflow_compute_provider.operators.reconcile import (
    claim_unheard,
    known_units,
    may_have_launched,
    plan_units,
)
from airflow_compute_provider.policy import (
    apply_policy_arguments,
    find_compute_policy,
    operator_aborts,
    take_policy_arguments,
)
from airflow_compute_provider.state.models import ResourceUpdate
from airflow_compute_provider.state.status import RESOURCE_TRANSITIONS, OperationStatus, ResourceStatus
from airflow_compute_provider.state.store import TenantStateStore
from airflow_compute_provider.triggers.progress import Progress, Settlement, assess
from airflow_compute_provider.triggers.status import ComputeStatusTrigger

XCOM_ERROR_KEY = "compute_error"

_PHASE_TO_LEDGER = {
    UnitPhase.PENDING: ResourceStatus.LAUNCHED,
    UnitPhase.RUNNING: ResourceStatus.RUNNING,
    UnitPhase.SUCCEEDED: ResourceStatus.SUCCEEDED,
    UnitPhase.FAILED: ResourceStatus.FAILED,
}


class AfterAirflowDecided:
    """The retry / failure callback every compute operator adds beside the author's own.

    It finds the operator through the callback's context rather than holding it: Airflow runs
    callbacks on the task object it executed, which is a copy of the one the DAG file built.
    """

    def __init__(self, *, will_retry: bool) -> None:
        self.will_retry = will_retry

    def __call__(self, context: Any) -> None:
        task = context.get("task") or getattr(context.get("ti"), "task", None)
        if isinstance(task, BaseComputeOperator):
            task.finish_after_decision(context, will_retry=self.will_retry)

    def __repr__(self) -> str:
        return f"AfterAirflowDecided(will_retry={self.will_retry})"


class ComputeTaskAborted(ComputeOperationError, AirflowFailException):
    """A compute failure that no retry can fix; Airflow fails the task without retrying.

    Raised for invalid arguments and for non-retriable and manual-intervention errors when the
    task has no ``retry_policy``. With a policy on Airflow 3.3+ the policy decides and this is
    never raised (it would bypass the policy); before 3.3 it is raised when the policy says FAIL.
    """


@dataclass(frozen=True)
class _Try:
    """One try of one execution, as execute() and its resumption see it."""

    execution: ExecutionRef
    attempt: int
    args: Mapping[str, Any]
    log: Any

    @property
    def tenant_id(self) -> str:
        return self.execution.tenant_id

    @property
    def execution_id(self) -> str:
        return self.execution.execution_id


class BaseComputeOperator(BaseOperator):
    """Launch units of compute for a tenant, wait for them, and turn every failure into data.

    :param tenant_id: whose work this is (``^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$``); templated.
    :param operation: free text naming what the work does ("provision"); templated.
    :param count: how many units (tasks, pods) to run; templated.
    :param wait_for: ``"completion"`` (every unit exits 0) or ``"running"`` (every unit runs,
        and is healthy where a health check is defined).
    :param timeout: how long one try waits before failing as OPERATION_TIMEOUT; the work
        keeps running and the next try reattaches to it.
    :param timeout_factor: each earlier try of this execution that timed out multiplies the
        timeout by this (default: the retry policy's, else 1.0), capped by ``max_timeout``.
    :param on_partial_failure: ``"rollback"`` stops what started when some units failed;
        ``"retry_failed"`` keeps them and the next try relaunches only the failed units (with
        no retry to follow, it rolls back).
    :param execution_id: the idempotency key of the operation; templated. Default:
        ``dag_id:run_id:task_id:map_index``, the same on every try.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param poll_interval: seconds between status polls.
    :param pending_grace_period: how long a unit may be stuck pending with an error
        (image pull back-off, unschedulable) before it counts as failed.
    :param on_kill_action: ``"keep"`` (default) or ``"stop"``: what a kill of the task does to
        the units. Worker shutdowns and ``execution_timeout`` keep them unless this is "stop".
    :param state_conn_id: the Airflow connection of the tenant state store.
    """

    provider: ClassVar[str] = ""
    #: validators of the provider operator's own arguments, checked like the common ones
    provider_argument_types: ClassVar[Mapping[str, Validator]] = {}

    template_fields: Sequence[str] = ("tenant_id", "operation", "execution_id", "count")
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        tenant_id: str,
        operation: str,
        count: int | str = 1,
        wait_for: str = "completion",
        timeout: timedelta = timedelta(hours=1),
        timeout_factor: float | None = None,
        max_timeout: timedelta | None = None,
        on_partial_failure: str = "rollback",
        execution_id: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: float = 10.0,
        pending_grace_period: timedelta = timedelta(minutes=5),
        on_kill_action: str = "keep",
        state_conn_id: str = "compute_state_default",
        **kwargs: Any,
    ) -> None:
        # retries follow the ComputeRetryPolicy unless the author set them (policy.py)
        policy_arguments = take_policy_arguments(kwargs)
        super().__init__(**kwargs)
        apply_policy_arguments(self, policy_arguments)
        self.tenant_id = tenant_id
        self.operation = operation
        self.count = count
        self.wait_for = wait_for
        self.timeout = timeout
        self.timeout_factor = timeout_factor
        self.max_timeout = max_timeout
        self.on_partial_failure = on_partial_failure
        self.execution_id = execution_id
        self.deferrable = deferrable
        self.poll_interval = poll_interval
        self.pending_grace_period = pending_grace_period
        self.on_kill_action = on_kill_action
        self.state_conn_id = state_conn_id
        # Static mistakes fail the DAG import; templated values are checked once rendered.
        self._validated(skip_templates=True)
        # Ours run beside the DAG author's callbacks, never instead of them.
        authors_retry: list[Any] = list(getattr(self, "on_retry_callback", None) or [])
        authors_failure: list[Any] = list(getattr(self, "on_failure_callback", None) or [])
        self.on_retry_callback = [*authors_retry, AfterAirflowDecided(will_retry=True)]
        self.on_failure_callback = [*authors_failure, AfterAirflowDecided(will_retry=False)]
        self._active: _Try | None = None
        self._watching: list[Unit] = []
        #: (unit index, generation) already timed by the launch-to-running metric
        self._timed_running: set[tuple[int, int]] = set()
        #: the exceptions ``_fail`` raised: recorded already, so they pass through untouched
        self._raised: list[ComputeOperationError] = []

    @property
    def compute_units(self) -> list[Unit]:
        """The units this try launched, adopted or watches (the console links read them)."""
        return list(self._watching)

    # -- what a provider operator supplies ------------------------------------------------------

    def make_backend(self) -> ComputeBackend:
        raise NotImplementedError

    def launch_request(self) -> dict[str, Any]:
        """The provider's request template (RunTask kwargs, a pod manifest)."""
        raise NotImplementedError

    def provider_arguments(self) -> dict[str, Any]:
        """The provider operator's own arguments, by name, for validation."""
        return {}

    # -- validation -----------------------------------------------------------------------------

    def common_arguments(self) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "operation": self.operation,
            "execution_id": self.execution_id,
            "count": self.count,
            "wait_for": self.wait_for,
            "timeout": self.timeout,
            "timeout_factor": self.timeout_factor if self.timeout_factor is not None else 1.0,
            "max_timeout": self.max_timeout,
            "on_partial_failure": self.on_partial_failure,
            "on_kill_action": self.on_kill_action,
            "poll_interval": self.poll_interval,
            "pending_grace_period": self.pending_grace_period,
            "state_conn_id": self.state_conn_id,
        }

    def _validated(self, *, skip_templates: bool) -> dict[str, Any]:
        args = validate_arguments(self.common_arguments(), ARGUMENT_TYPES, skip_templates=skip_templates)
        args.update(
            validate_arguments(
                self.provider_arguments(), self.provider_argument_types, skip_templates=skip_templates
            )
        )
        timeout, cap = args["timeout"], args["max_timeout"]
        if isinstance(timeout, timedelta) and isinstance(cap, timedelta) and cap < timeout:
            raise ComputeConfigError(f"must not be shorter than timeout ({timeout})", argument="max_timeout")
        return args

    # -- rendering -------------------------------------------------------------------------------

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Render as usual, with two additions: templates may read ``previous_compute_error``
        (the last try's error, to change parameters on the next try), and every secret of the
        rendered arguments is registered with Airflow's masker before Airflow stores or logs
        the rendered fields."""
        context["previous_compute_error"] = self._previous_error(context, jinja_env)
        super().render_template_fields(context, jinja_env)
        register_secrets(self.provider_arguments())

    def _previous_error(self, context: Any, jinja_env: Any) -> dict[str, Any] | None:
        try:
            env = jinja_env or self.get_template_env()
            tenant_id = self.render_template(self.tenant_id, context, env)
            execution_id = self._execution_id(
                context, {"execution_id": self.render_template(self.execution_id, context, env)}
            )
            error = self._store.last_error(str(tenant_id), execution_id)
        except Exception:  # a template error surfaces where it belongs: in rendering itself
            return None
        return error.to_json_dict() if error is not None else None

    # -- the lifecycle --------------------------------------------------------------------------

    def execute(self, context: Any) -> dict[str, Any]:
        self._active = None
        try:
            args = self._validated(skip_templates=False)
            attempt = int(context["ti"].try_number)
            execution = ExecutionRef(args["tenant_id"], self._execution_id(context, args))
        except ComputeConfigError as exc:
            error = redact_error(exc.error.with_context(provider=self.provider, operation=self.operation))
            self._push_error(context, error)
            metrics.error(error, provider=self.provider)
            raise self._exception_for(exc.error, context) from None
        t = self._new_try(execution, attempt, args)
        try:
            self._store.begin_operation(
                execution.tenant_id, execution.execution_id, args["operation"], self.provider, attempt
            )
        except ComputeOperationError as exc:
            # Refused: the tenant is someone else's to change, so nothing is recorded.
            self._fail(context, t, exc.error, record=False)
        self._active = t
        with self._failures_as_compute_errors(context, t):
            return self._launch_and_wait(context, t)

    def execute_complete(self, context: Any, event: dict[str, Any], **_next_kwargs: Any) -> dict[str, Any]:
        """Resume after the trigger fired: settle with the statuses it saw."""
        resume = event["resume"]
        tenant_id, execution_id = resume["tenant_id"], resume["execution_id"]
        units, done, deadline = resume["units"], resume["done"], resume["deadline"]
        args = self._validated(skip_templates=False)
        t = self._new_try(ExecutionRef(tenant_id, execution_id), int(context["ti"].try_number), args)
        self._active = t
        self._watching = [Unit.from_dict(u) for u in units]
        with self._failures_as_compute_errors(context, t):
            statuses = self._complete_statuses(
                t, [UnitStatus.from_dict(s) for s in event.get("statuses", [])]
            )
            if event.get("kind") == "error":
                error = ComputeError.model_validate(event["error"])
                self._fail(context, t, error.model_copy(update={"cleanup": _left_running(statuses)}))
            return self._settle(
                context,
                t,
                [UnitStatus.from_dict(s) for s in done],
                statuses,
                datetime.fromisoformat(deadline),
                timed_out=event.get("kind") == "timeout",
            )

    def _complete_statuses(self, t: _Try, statuses: list[UnitStatus]) -> list[UnitStatus]:
        """Every watched unit's status. A trigger that started after its deadline (a busy
        triggerer) fires before it polled; the units it never saw are described once here, so
        the error still lists what was left running. If that fails too they count as pending."""
        seen = {(s.unit.index, s.unit.generation) for s in statuses}
        unseen = [u for u in self._watching if (u.index, u.generation) not in seen]
        if not unseen:
            return statuses
        try:
            return statuses + self.make_backend().describe(unseen)
        except ComputeOperationError as exc:
            t.log.warning("could not describe units the trigger never saw", code=exc.error.code.value)
            return statuses + [UnitStatus(unit=u, phase=UnitPhase.PENDING) for u in unseen]

    def _new_try(self, execution: ExecutionRef, attempt: int, args: Mapping[str, Any]) -> _Try:
        log = operation_logger(
            tenant_id=execution.tenant_id,
            operation=args["operation"],
            execution_id=execution.execution_id,
            provider=self.provider,
            attempt=attempt,
        )
        return _Try(execution=execution, attempt=attempt, args=args, log=log)

    @contextmanager
    def _failures_as_compute_errors(self, context: Any, t: _Try) -> Iterator[None]:
        """Whatever escapes a try leaves it as a recorded ComputeError (deferral passes through)."""
        try:
            yield
        except AirflowTaskTimeout:
            # execution_timeout: Airflow ends this try, never the units.
            self._record_failure(
                context,
                t,
                ComputeError(
                    code=ErrorCode.OPERATION_TIMEOUT,
                    message="the task's execution_timeout passed; units left running",
                    cleanup=CleanupReport(
                        action="left_running", resources=[u.resource_id for u in self._watching]
                    ),
                ),
            )
            raise
        except ComputeOperationError as exc:
            if exc in self._raised:
                raise
            # A hook's error that no lifecycle step turned into the operation's failure yet.
            self._fail(context, t, exc.error)
        except Exception as exc:
            from airflow_compute_provider.normalize import from_exception

            self._fail(context, t, from_exception(exc))

    def _launch_and_wait(self, context: Any, t: _Try) -> dict[str, Any]:
        backend = self.make_backend()
        request = self.launch_request()
        register_secrets(request)
        timeout = self._try_timeout(t)
        deadline = datetime.now(UTC) + timeout
        adopted, launched = self._reconcile_and_launch(context, t, backend, request)
        done = [s for s in adopted if s.phase is UnitPhase.SUCCEEDED]
        watch = [s.unit for s in adopted if s.phase is not UnitPhase.SUCCEEDED] + list(launched)
        self._watching = watch
        t.log.info(
            "compute units launched",
            adopted=[s.unit.resource_id for s in adopted],
            launched=[u.resource_id for u in launched],
            deadline=deadline.isoformat(),
        )
        if not watch:
            return self._settle(context, t, done, [], deadline, timed_out=False)
        if self.deferrable:
            self.defer(
                trigger=ComputeStatusTrigger(
                    provider=self.provider,
                    backend_config=backend.backend_config(),
                    units=[u.to_dict() for u in watch],
                    deadline=deadline.isoformat(),
                    wait_for=t.args["wait_for"],
                    poll_interval=t.args["poll_interval"],
                    pending_grace_period=t.args["pending_grace_period"].total_seconds(),
                    on_kill_action=t.args["on_kill_action"],
                    resume={
                        "tenant_id": t.tenant_id,
                        "execution_id": t.execution_id,
                        "units": [u.to_dict() for u in watch],
                        "done": [s.to_dict() for s in done],
                        "deadline": deadline.isoformat(),
                    },
                ),
                method_name="execute_complete",
            )
        statuses, timed_out = self._poll_until_settled(t, backend, watch, done, deadline)
        return self._settle(context, t, done, statuses, deadline, timed_out=timed_out)

    def _reconcile_and_launch(
        self, context: Any, t: _Try, backend: ComputeBackend, request: Mapping[str, Any]
    ) -> tuple[list[UnitStatus], list[Unit]]:
        store = self._store
        count = int(t.args["count"])
        ledger = store.ledger(t.tenant_id, t.execution_id)
        existing = known_units(ledger, backend.find(t.execution))
        statuses = backend.describe(existing) if existing else []
        plan = plan_units(count, ledger, statuses, fresh_start=self._already_succeeded(t))
        self._time_launch_to_running(t, plan.adopted)
        self._ledger_statuses(t, plan.adopted, backend)
        for launch in plan.to_launch:
            store.record_intent(
                t.tenant_id,
                t.execution_id,
                provider=self.provider,
                conn_id=self._conn_id(),
                locator=backend.locator(),
                unit_index=launch.index,
                generation=launch.generation,
                idempotency_token=launch.token(t.execution),
            )
        result = (
            backend.launch(
                LaunchPlan(
                    execution=t.execution,
                    units=plan.to_launch,
                    request=request,
                    operation=t.args["operation"],
                )
            )
            if plan.to_launch
            else None
        )
        launched, refused = claim_unheard(
            backend,
            t.execution,
            list(result.launched) if result else [],
            list(result.refused) if result else [],
        )
        # A launch whose answer never came back (the connection dropped) may have started its
        # unit: its row stays an intent, so the next try re-sends the same token or adopts what
        # it finds, and the ledger can follow that unit (a failed row could not take it back).
        updates = [
            ResourceUpdate(u.index, u.generation, ResourceStatus.LAUNCHED, resource_id=u.resource_id)
            for u in launched
        ] + [
            ResourceUpdate(ul.index, ul.generation, ResourceStatus.FAILED, error=err)
            for ul, err in refused
            if not may_have_launched(err)
        ]
        if updates:
            self._record_resources(t, updates)
        metrics.launched(self.provider, len(launched))
        metrics.adopted(self.provider, len(plan.adopted))
        if refused:
            self._fail_launch(
                context,
                t=t,
                backend=backend,
                adopted=list(plan.adopted),
                launched=launched,
                refused=refused,
                count=count,
            )
        return list(plan.adopted), launched

    def _fail_launch(
        self,
        context: Any,
        *,
        t: _Try,
        backend: ComputeBackend,
        adopted: list[UnitStatus],
        launched: list[Unit],
        refused: list[tuple[Any, ComputeError]],
        count: int,
    ) -> NoReturn:
        started = [s.unit for s in adopted if not s.phase.terminal] + launched
        statuses = adopted + [UnitStatus(unit=u, phase=UnitPhase.PENDING) for u in launched]
        report = outcome.units_report(statuses, [(ul.index, None, err) for ul, err in refused])
        error = outcome.failure_error(report, count=count)
        if error.code is ErrorCode.PARTIAL_FAILURE:
            error = self._handle_partial(t, backend, error, started)
        self._fail(context, t, error)

    def _poll_until_settled(
        self,
        t: _Try,
        backend: ComputeBackend,
        watch: list[Unit],
        done: list[UnitStatus],
        deadline: datetime,
    ) -> tuple[list[UnitStatus], bool]:
        statuses: list[UnitStatus] = []
        while True:
            now = datetime.now(UTC)
            try:
                statuses = backend.describe(watch)
            except ComputeOperationError as exc:
                if exc.error.classification is not Classification.RETRIABLE:
                    raise
                t.log.warning("status poll failed, will poll again", code=exc.error.code.value)
            else:
                self._time_launch_to_running(t, statuses)
                progress = self._assess(t, done + statuses, deadline, now)
                if progress.state in (Settlement.SUCCEEDED, Settlement.FAILED):
                    return statuses, False
            if now >= deadline:
                return statuses, True
            time.sleep(max(0.0, min(float(t.args["poll_interval"]), (deadline - now).total_seconds())))

    def _time_launch_to_running(self, t: _Try, statuses: Sequence[UnitStatus]) -> None:
        """The launch-to-running metric, once per unit generation first seen running (polling,
        settling, or adopting it on a later try): from its ledger intent (written just before
        the launch request) to now. A unit the ledger already saw running was timed before."""
        fresh = {
            (s.unit.index, s.unit.generation)
            for s in statuses
            if s.phase is UnitPhase.RUNNING and (s.unit.index, s.unit.generation) not in self._timed_running
        }
        if not fresh:
            return
        self._timed_running |= fresh
        now = datetime.now(UTC)
        for entry in self._store.ledger(t.tenant_id, t.execution_id):
            if (entry.unit_index, entry.generation) in fresh and entry.status in (
                ResourceStatus.INTENDED,
                ResourceStatus.LAUNCHED,
            ):
                metrics.launch_to_running(self.provider, now - entry.created_at)

    def _assess(self, t: _Try, statuses: Sequence[UnitStatus], deadline: datetime, now: datetime) -> Progress:
        return assess(
            statuses,
            wait_for=t.args["wait_for"],
            now=now,
            deadline=deadline,
            pending_grace_period=t.args["pending_grace_period"],
        )

    def _settle(
        self,
        context: Any,
        t: _Try,
        done: list[UnitStatus],
        statuses: list[UnitStatus],
        deadline: datetime,
        *,
        timed_out: bool,
    ) -> dict[str, Any]:
        everything = done + statuses
        progress = self._assess(t, everything, deadline, datetime.now(UTC))
        self._time_launch_to_running(t, statuses)
        self._ledger_statuses(t, statuses)
        if progress.state is Settlement.SUCCEEDED:
            store = self._store
            store.record_outcome(t.tenant_id, t.execution_id, None)
            store.finish_operation(t.tenant_id, t.execution_id, None, will_retry=False)
            self._active = None
            t.log.info("compute operation succeeded", units=len(everything))
            return outcome.success_result(t.execution_id, everything)
        count = int(t.args["count"])
        if progress.state is Settlement.FAILED:
            failures = [(s.unit.index, s.unit.resource_id, err) for s, err in progress.failures]
            report = outcome.units_report(everything, failures)
            error = outcome.failure_error(report, count=count)
            stuck = [s.unit for s, _ in progress.failures if not s.phase.terminal]
            if error.code is ErrorCode.PARTIAL_FAILURE:
                running = [s.unit for s in everything if not s.phase.terminal and s.unit not in stuck]
                error = self._handle_partial(t, self.make_backend(), error, running, also_stop=stuck)
            elif stuck:
                error = self._roll_back(t, self.make_backend(), error, stuck)
            self._fail(context, t, error)
        if not timed_out and progress.state is Settlement.WAITING:
            # The trigger fired early (it never should); treat it like a timeout, never as success.
            t.log.warning("trigger fired before the operation settled")
        report = outcome.units_report(everything)
        self._fail(context, t, outcome.timeout_error(report, timeout=self._try_timeout(t)))

    # -- partial failures and rollback ----------------------------------------------------------

    def _handle_partial(
        self,
        t: _Try,
        backend: ComputeBackend,
        error: ComputeError,
        running: list[Unit],
        also_stop: Sequence[Unit] = (),
    ) -> ComputeError:
        if t.args["on_partial_failure"] == "retry_failed":
            if also_stop:
                error = self._roll_back(t, backend, error, list(also_stop))
            return outcome.with_cleanup(
                error, CleanupReport(action="left_running", resources=[u.resource_id for u in running])
            )
        return self._roll_back(t, backend, error, [*running, *also_stop])

    def _roll_back(
        self, t: _Try, backend: ComputeBackend, error: ComputeError, units: list[Unit]
    ) -> ComputeError:
        """Stop ``units``; what cannot be stopped is marked for cleanup, and the error says so."""
        if not units:
            return error
        self._record_resources(
            t,
            [
                ResourceUpdate(u.index, u.generation, ResourceStatus.STOPPING, resource_id=u.resource_id)
                for u in units
            ],
        )
        not_stopped = backend.stop(units, reason=f"rollback of {t.args['operation']} ({error.code.value})")
        not_stopped = [(u, redact_error(e)) for u, e in not_stopped]
        stuck_ids = {u.resource_id for u, _ in not_stopped}
        self._record_resources(
            t,
            [
                ResourceUpdate(u.index, u.generation, ResourceStatus.STOPPED, resource_id=u.resource_id)
                for u in units
                if u.resource_id not in stuck_ids
            ]
            + [
                ResourceUpdate(
                    u.index, u.generation, ResourceStatus.PENDING_CLEANUP, resource_id=u.resource_id, error=e
                )
                for u, e in not_stopped
            ],
        )
        t.log.info(
            "rolled back compute units", stopped=len(units) - len(not_stopped), not_stopped=len(not_stopped)
        )
        metrics.rolled_back(self.provider, len(units) - len(not_stopped))
        metrics.cleanup(self.provider, len(not_stopped), "marked")
        if not not_stopped:
            return outcome.with_cleanup(
                error, CleanupReport(action="rolled_back", resources=[u.resource_id for u in units])
            )
        first = not_stopped[0][1]
        return ComputeError(
            code=ErrorCode.CLEANUP_FAILED,
            message=(
                f"{error.code.value}: {error.message}; then {len(not_stopped)} unit(s) could not be "
                f"stopped and are marked for cleanup: {first.message}"
            ),
            root_cause=first.root_cause,
            units=error.units,
            cleanup=CleanupReport(action="marked_for_cleanup", resources=sorted(stuck_ids)),
        )

    # -- failure --------------------------------------------------------------------------------

    def _fail(self, context: Any, t: _Try, error: ComputeError, *, record: bool = True) -> NoReturn:
        error = self._record_failure(context, t, error, record=record)
        exception = self._exception_for(error, context)
        self._raised.append(exception)
        raise exception

    def _record_failure(
        self, context: Any, t: _Try, error: ComputeError, *, record: bool = True
    ) -> ComputeError:
        # The workflow's operation ("provision") replaces the API call a normalizer named. From
        # here on (XCom, the store, the logs, the exception) secrets the provider echoed are masked.
        error = redact_error(
            error.with_context(
                provider=self.provider, execution_id=t.execution_id, tenant_id=t.tenant_id, attempt=t.attempt
            ).model_copy(update={"operation": t.args["operation"]})
        )
        self._push_error(context, error)
        metrics.error(error, provider=self.provider)
        if record:
            self._store.record_outcome(t.tenant_id, t.execution_id, error)
        log_raw_response(t.log, error.to_json_dict(), what="compute error (normalized), with its root cause")
        return error

    def _exception_for(self, error: ComputeError, context: Any = None) -> ComputeOperationError:
        # With a retry policy on Airflow 3.3+ the policy decides (AirflowFailException would
        # bypass it); without one, or before 3.3, policy.operator_aborts says when to fail fast.
        if operator_aborts(error, getattr(self, "retry_policy", None), context):
            return ComputeTaskAborted(error)
        return ComputeOperationError(error)

    def _push_error(self, context: Any, error: ComputeError) -> None:
        context["ti"].xcom_push(key=XCOM_ERROR_KEY, value=error.to_json_dict())

    # -- Airflow's decision, then the tenant ----------------------------------------------------

    def finish_after_decision(self, context: Any, *, will_retry: bool) -> None:
        """Airflow decided: a retry follows (the tenant waits for it, warning level) or not (the
        store's rule for the tenant, error level; a ``retry_failed`` partial failure is rolled
        back after all)."""
        t = self._active
        raised = _error_of(context.get("exception"))
        if t is None:
            # The try never held the tenant (bad arguments, or the store refused it).
            if raised is not None:
                raised = redact_error(raised)
                log_failure(operation_logger(**_log_context(raised)), raised, final=not will_retry)
            return
        store = self._store
        error = redact_error(store.last_error(t.tenant_id, t.execution_id) or raised or _unexplained(context))
        if not will_retry and error.cleanup is not None and error.cleanup.action == "left_running":
            error = self._roll_back_left_running(t, error)
        store.finish_operation(t.tenant_id, t.execution_id, error, will_retry=will_retry)
        self._active = None
        log_failure(t.log, error, final=not will_retry)

    def _roll_back_left_running(self, t: _Try, error: ComputeError) -> ComputeError:
        """With no retry to follow, ``retry_failed`` acts as ``rollback`` (a timeout never does)."""
        if error.code is not ErrorCode.PARTIAL_FAILURE:
            return error
        newest: dict[int, Any] = {}
        for entry in self._store.ledger(t.tenant_id, t.execution_id):
            if entry.unit_index not in newest or entry.generation > newest[entry.unit_index].generation:
                newest[entry.unit_index] = entry
        running = [
            Unit(e.unit_index, e.generation, e.resource_id, dict(e.locator))
            for e in newest.values()
            if e.resource_id and e.status in (ResourceStatus.LAUNCHED, ResourceStatus.RUNNING)
        ]
        rolled = redact_error(self._roll_back(t, self.make_backend(), error, running))
        self._store.record_outcome(t.tenant_id, t.execution_id, rolled)
        return rolled

    def on_kill(self) -> None:
        if self.on_kill_action == "stop" and self._watching:
            self.make_backend().stop(self._watching, reason="task killed in Airflow")

    # -- helpers --------------------------------------------------------------------------------

    @cached_property
    def _store(self) -> TenantStateStore:
        from airflow_compute_provider.state.config import open_state_store

        return open_state_store(self.state_conn_id)

    def _conn_id(self) -> str | None:
        return None

    def _execution_id(self, context: Any, args: Mapping[str, Any]) -> str:
        if args.get("execution_id"):
            return str(args["execution_id"])
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        return f"{ti.dag_id}:{ti.run_id}:{ti.task_id}:{map_index}"

    def _try_timeout(self, t: _Try) -> timedelta:
        earlier_timeouts = self._store.timeouts_so_far(t.tenant_id, t.execution_id)
        factor = float(t.args.get("timeout_factor") or 1.0)
        policy = find_compute_policy(getattr(self, "retry_policy", None))
        policy_factor = getattr(policy, "timeout_factor_for", None)
        if self.timeout_factor is None and callable(policy_factor):
            factor = float(policy_factor(ErrorCode.OPERATION_TIMEOUT))
        timeout: timedelta = t.args["timeout"] * (factor**earlier_timeouts)
        cap = t.args.get("max_timeout")
        return min(timeout, cap) if cap else timeout

    def _already_succeeded(self, t: _Try) -> bool:
        return any(
            op.execution_id == t.execution_id
            and op.attempt < t.attempt
            and op.status is OperationStatus.SUCCEEDED
            for op in self._store.list_operations(tenant_id=t.tenant_id)
        )

    def _ledger_statuses(
        self, t: _Try, statuses: Sequence[UnitStatus], backend: ComputeBackend | None = None
    ) -> None:
        """Move ledger rows forward to what the provider reports. A unit found on the provider
        that the ledger never heard of (its intent was lost) gets its row first; a report that
        would move a row backwards (a stale poll) is left out."""
        store = self._store
        rows = {(e.unit_index, e.generation): e for e in store.ledger(t.tenant_id, t.execution_id)}
        unknown = [s for s in statuses if (s.unit.index, s.unit.generation) not in rows]
        if unknown and backend is not None:
            for s in unknown:
                store.record_intent(
                    t.tenant_id,
                    t.execution_id,
                    provider=self.provider,
                    conn_id=self._conn_id(),
                    locator=dict(s.unit.locator) or backend.locator(),
                    unit_index=s.unit.index,
                    generation=s.unit.generation,
                    idempotency_token=UnitLaunch(s.unit.index, s.unit.generation).token(t.execution),
                )
            rows = {(e.unit_index, e.generation): e for e in store.ledger(t.tenant_id, t.execution_id)}
        updates = []
        for s in statuses:
            target = _PHASE_TO_LEDGER.get(s.phase)
            row = rows.get((s.unit.index, s.unit.generation))
            if target is None or row is None:
                continue
            if row.status is target or target in RESOURCE_TRANSITIONS[row.status]:
                updates.append(
                    ResourceUpdate(s.unit.index, s.unit.generation, target, s.unit.resource_id, s.error)
                )
        if updates:
            self._record_resources(t, updates)

    def _record_resources(self, t: _Try, updates: Sequence[ResourceUpdate]) -> None:
        """Ledger moves, with the secrets a provider echoed masked in each unit's error."""
        masked = [
            dataclasses.replace(u, error=redact_error(u.error)) if u.error is not None else u for u in updates
        ]
        self._store.record_resources(t.tenant_id, t.execution_id, masked)


def _left_running(statuses: Sequence[UnitStatus]) -> CleanupReport:
    return CleanupReport(
        action="left_running", resources=[s.unit.resource_id for s in statuses if not s.phase.terminal]
    )


def _error_of(exception: BaseException | None) -> ComputeError | None:
    if isinstance(exception, ComputeOperationError):
        return exception.error
    return None


def _log_context(error: ComputeError) -> dict[str, Any]:
    return {
        "tenant_id": error.tenant_id,
        "operation": error.operation,
        "execution_id": error.execution_id,
        "provider": error.provider,
        "attempt": error.attempt,
    }


def _unexplained(context: Any) -> ComputeError:
    """The try failed before it could record why (a killed worker, an exception in Airflow)."""
    from airflow_compute_provider.normalize import from_exception

    exception = context.get("exception")
    if exception is None:
        return ComputeError(
            code=ErrorCode.UNKNOWN_PROVIDER_ERROR, message="the try failed without an exception"
        )
    return from_exception(exception)


__all__ = ["XCOM_ERROR_KEY", "BaseComputeOperator", "ComputeTaskAborted"]
