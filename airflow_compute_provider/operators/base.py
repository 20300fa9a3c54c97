"""``BaseComputeOperator``: the lifecycle of one compute operation, written once for every provider.

A provider operator (``ecs.py``, ``kubernetes.py``) only says *what* to launch: its arguments,
its launch request and its backend. Everything else happens in this order, driven from here;
the column on the right names the module of ``lifecycle/`` that does the step's work:

    1. validate   arguments, before any provider call (ComputeConfigError,   arguments.py
                  never retried)
    2. begin      the tenant's state store records the try (a ``Try``: its   tries.py
                  attempt, numbered by the store, and its process's token);
                  a held tenant refuses it; every later write names the try
                  and is refused once a newer try began (SupersededTryError)
    3. reconcile  adopt what this execution already launched; relaunch only  launch.py,
                  what failed                                                reconcile.py
    4. launch     intent in the ledger first, then the request with its      launch.py,
                  idempotency token; a partial launch is rolled back, or     ledger.py,
                  kept for ``retry_failed``                                  rollback.py
    5. wait       deferred to ComputeStatusTrigger, or polling here: same    wait.py,
                  deadline either way (a deferred try's is bounded by        deadline.py
                  execution_timeout too, which Airflow 3.3 does not do);
                  container output to the task log (streamed when blocking,  container_logs.py
                  read at resume when deferred; a failed unit's last lines
                  join its error)
    6. settle     success -> XCom result; failure -> XCom ``compute_error``, outcome.py,
                  the error kept with the operation, and                     failure.py,
                  ComputeOperationError raised                               rollback.py

Airflow then decides whether a retry follows (``retry_policy`` on 3.3+). The tenant's state and
the log level follow that decision, in the retry and failure callbacks this operator adds
beside the DAG author's own (``lifecycle/decisions.py``). Work is never stopped because time ran out: a
timed-out try leaves its units running for the next try, or the reconciler, to pick up.

``XCOM_ERROR_KEY`` (``lifecycle/xcom.py``) and ``ComputeTaskAborted`` (``lifecycle/failure.py``)
are importable from here too, where DAG files have imported them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any, ClassVar, NoReturn

from airflow.sdk import BaseOperator

try:
    from airflow.sdk.exceptions import AirflowTaskTimeout, TaskDeferralTimeout
except ImportError:  # Airflow < 3.2 keeps them in airflow.exceptions
    from airflow.exceptions import AirflowTaskTimeout, TaskDeferralTimeout  # type: ignore[no-redef]

from airflow_compute_provider import metrics
from airflow_compute_provider.errors import ComputeConfigError, ComputeError, ComputeOperationError, ErrorCode
from airflow_compute_provider.errors.model import RootCause
from airflow_compute_provider.hooks.base import ComputeBackend, ExecutionRef, Unit, UnitPhase, UnitStatus
from airflow_compute_provider.hooks.container_logs import ContainerLogReader
from airflow_compute_provider.lifecycle import decisions, outcome
from airflow_compute_provider.lifecycle.arguments import (
    ComputeArguments,
    parameters_doc,
    valid_or_none,
    validate_arguments,
)
from airflow_compute_provider.lifecycle.container_logs import ContainerLogs, outcome_time, previous_read
from airflow_compute_provider.lifecycle.deadline import DeadlineBy, TryDeadline, ledger_units, try_deadline
from airflow_compute_provider.lifecycle.decisions import AfterAirflowDecided
from airflow_compute_provider.lifecycle.failure import (
    ComputeTaskAborted,
    exception_for,
    push_error,
    record_failure,
)
from airflow_compute_provider.lifecycle.launch import launch_failure, reconcile_and_launch
from airflow_compute_provider.lifecycle.ledger import LaunchTimer, follow_statuses
from airflow_compute_provider.lifecycle.rollback import handle_partial, left_running, roll_back
from airflow_compute_provider.lifecycle.task_instance import task_instance_of
from airflow_compute_provider.lifecycle.tries import Try
from airflow_compute_provider.lifecycle.wait import (
    assess_try,
    complete_statuses,
    poll_until_settled,
    status_trigger,
)
from airflow_compute_provider.lifecycle.xcom import XCOM_ERROR_KEY
from airflow_compute_provider.observability import redact_error, register_secrets, secret_values
from airflow_compute_provider.operators.policy_arguments import apply_policy_arguments, take_policy_arguments
from airflow_compute_provider.policy import find_compute_policy
from airflow_compute_provider.state import validate as store_checks
from airflow_compute_provider.state.clock import new_token
from airflow_compute_provider.state.rules import STORE_SOURCE
from airflow_compute_provider.state.status import SupersededTryError
from airflow_compute_provider.state.store import TenantStateStore
from airflow_compute_provider.triggers.progress import Settlement

#: the next method Airflow resumes a deferred try with when it ends the deferral itself
TRIGGER_FAIL_REPR = "__fail__"
#: the token of a resumed try the store has no record of: its writes are all refused
UNRECORDED_TRY = "unrecorded-resumed-try"
#: what a try refused by the store logs, by the refusal's reason
_STOPPED = {
    "superseded_try": "this try was superseded by a newer try",
    "try_ended": "this try's operation was ended by a maintenance run or a platform operator",
}


class BaseComputeOperator(BaseOperator):
    """Launch units of compute for a tenant, wait for them, and turn every failure into data.

    The parameters are ``ComputeArguments``' (``lifecycle/arguments.py``): each one's type,
    rule, default and meaning are written there once, and listed below from it.
    """

    provider: ClassVar[str] = ""
    #: the operator's arguments: a provider operator's model extends ``ComputeArguments``
    arguments_model: ClassVar[type[ComputeArguments]] = ComputeArguments

    template_fields: Sequence[str] = ("tenant_id", "operation", "execution_id", "count")
    ui_color = "#e8f0fe"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.arguments_model.own_fields()
        if own and cls.__doc__ and ":param" not in cls.__doc__:
            cls.__doc__ = (
                f"{cls.__doc__.rstrip()}\n\n{parameters_doc(cls.arguments_model, own, cls.template_fields)}\n"
            )

    def __init__(
        self,
        *,
        tenant_id: str,
        operation: str,
        count: int | str = ComputeArguments.DEFAULTS.count,
        wait_for: str = ComputeArguments.DEFAULTS.wait_for,
        timeout: timedelta = ComputeArguments.DEFAULTS.timeout,
        timeout_factor: float | None = ComputeArguments.DEFAULTS.timeout_factor,
        max_timeout: timedelta | None = ComputeArguments.DEFAULTS.max_timeout,
        on_partial_failure: str = ComputeArguments.DEFAULTS.on_partial_failure,
        execution_id: str | None = ComputeArguments.DEFAULTS.execution_id,
        deferrable: bool = ComputeArguments.DEFAULTS.deferrable,
        poll_interval: float = ComputeArguments.DEFAULTS.poll_interval,
        pending_grace_period: timedelta = ComputeArguments.DEFAULTS.pending_grace_period,
        on_kill_action: str = ComputeArguments.DEFAULTS.on_kill_action,
        state_conn_id: str = ComputeArguments.DEFAULTS.state_conn_id,
        get_logs: bool = ComputeArguments.DEFAULTS.get_logs,
        container_logs: str | list[str] | bool | None = ComputeArguments.DEFAULTS.container_logs,
        log_lines_on_failure: int = ComputeArguments.DEFAULTS.log_lines_on_failure,
        log_fetch_interval: float = ComputeArguments.DEFAULTS.log_fetch_interval,
        **kwargs: Any,
    ) -> None:
        # The signature is what Airflow applies default_args by and what editors complete; each
        # argument's type, rule, default and meaning live in the model (lifecycle/arguments.py).
        given = dict(locals())
        # retries follow the ComputeRetryPolicy unless the author set them (operators/policy_arguments.py)
        policy_arguments = take_policy_arguments(kwargs)
        super().__init__(**kwargs)
        apply_policy_arguments(self, policy_arguments)
        self._keep_arguments(given)
        # Static mistakes fail the DAG import; templated values are checked once rendered.
        validate_arguments(self.arguments_model, self._argument_values(), skip_templates=True)
        # Ours run beside the DAG author's callbacks, never instead of them.
        authors_retry: list[Any] = list(getattr(self, "on_retry_callback", None) or [])
        authors_failure: list[Any] = list(getattr(self, "on_failure_callback", None) or [])
        self.on_retry_callback = [*authors_retry, AfterAirflowDecided(will_retry=True)]
        self.on_failure_callback = [*authors_failure, AfterAirflowDecided(will_retry=False)]
        self._active: Try | None = None
        self._watching: list[Unit] = []
        #: the newest statuses of ``_watching`` a blocking wait polled
        self._latest: list[UnitStatus] = []
        self._launch_timer = LaunchTimer()
        #: the exceptions ``_fail`` raised: recorded already, so they pass through untouched
        self._raised: list[ComputeOperationError] = []
        #: this try's reading of container output (``container_logs.py``), made when first needed
        self._logs: ContainerLogs | None = None
        self._logs_try: tuple[int, str | None] | None = None

    @property
    def compute_units(self) -> list[Unit]:
        """The units this try launched, adopted or watches (the console links read them)."""
        return list(self._watching)

    # -- what a provider operator supplies ------------------------------------------------------

    def make_backend(self) -> ComputeBackend:
        raise NotImplementedError

    def launch_request(self, args: ComputeArguments) -> dict[str, Any]:
        """The provider's request template (RunTask kwargs, a pod manifest) from the try's
        validated arguments (the operator's ``arguments_model``)."""
        raise NotImplementedError

    def make_log_reader(self) -> ContainerLogReader:
        """The provider's reader of its units' container output (``container_logs.py``)."""
        raise NotImplementedError(f"{type(self).__name__} reads no container output")

    # -- arguments ------------------------------------------------------------------------------

    def _keep_arguments(self, given: Mapping[str, Any]) -> None:
        """Keep the model's arguments among an ``__init__``'s ``locals()`` as attributes (where
        Airflow renders the templated ones)."""
        for name in self.arguments_model.model_fields:
            if name in given:
                setattr(self, name, given[name])

    def _argument_values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.arguments_model.model_fields}

    def _provider_values(self) -> dict[str, Any]:
        """The provider operator's own arguments (where its secrets are)."""
        return {name: getattr(self, name) for name in self.arguments_model.own_fields()}

    def _validated(self) -> ComputeArguments:
        """The rendered arguments, every one checked, as the try reads them."""
        return self.arguments_model.validated(self._argument_values())

    # -- rendering -------------------------------------------------------------------------------

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        """Render as usual, with two additions: templates may read ``previous_compute_error``
        (the last try's error, to change parameters on the next try), and every secret of the
        rendered arguments is registered with Airflow's masker before Airflow stores or logs
        the rendered fields."""
        context["previous_compute_error"] = self._previous_error(context, jinja_env)
        super().render_template_fields(context, jinja_env)
        register_secrets(self._provider_values())

    def _previous_error(self, context: Any, jinja_env: Any) -> dict[str, Any] | None:
        try:
            env = jinja_env or self.get_template_env()
            tenant_id = self.render_template(self.tenant_id, context, env)
            execution_id = self._execution_id(context, self.render_template(self.execution_id, context, env))
            error = self._store.last_error(str(tenant_id), execution_id)
        except Exception:  # a template error surfaces where it belongs: in rendering itself
            return None
        return error.to_json_dict() if error is not None else None

    # -- the lifecycle --------------------------------------------------------------------------

    def execute(self, context: Any) -> dict[str, Any]:
        self._active = None
        try:
            args = self._validated()
            attempt = int(context["ti"].try_number)
            execution = ExecutionRef(args.tenant_id, self._execution_id(context, args.execution_id))
        except ComputeConfigError as exc:
            operation = valid_or_none(self.operation, "operation")  # never the rejected value
            error = redact_error(exc.error.with_context(provider=self.provider, operation=operation))
            push_error(context, error)
            metrics.error(error, provider=self.provider)
            self._hold_for_invalid_arguments(context, error)
            raise self._exception_for(exc.error, context) from None
        token = new_token()
        try:
            op = self._store.begin_operation(
                execution.tenant_id,
                execution.execution_id,
                args.operation,
                self.provider,
                attempt,
                token=token,
                task_instance=task_instance_of(context),
            )
        except ComputeOperationError as exc:
            # Refused: the tenant is someone else's to change, so nothing is recorded.
            self._fail(
                context, Try.start(execution, attempt, args, provider=self.provider), exc.error, record=False
            )
        # The store numbers the execution's tries: a new DAG run of the same execution id is
        # its next try, whatever Airflow's try number says.
        t = Try.start(
            execution,
            op.attempt,
            args,
            provider=self.provider,
            token=op.try_token,
            airflow_try_number=attempt,
        )
        self._active = t
        with self._failures_as_compute_errors(context, t):
            return self._launch_and_wait(context, t)

    def execute_complete(self, context: Any, event: dict[str, Any], **_next_kwargs: Any) -> dict[str, Any]:
        """Resume after the trigger fired: settle with the statuses it saw."""
        resume = event.get("resume") if isinstance(event, dict) else None
        if not _usable_resume(resume):
            # The trigger's contract broken (it never should be): take what the try watches
            # from the ledger instead, and let the provider say where it stands.
            self.log.warning("the trigger's event is malformed; resuming from the ledger: %.200r", event)
            return self._resume_from_ledger(context, DeadlineBy.TIMEOUT, timed_out=False)
        assert isinstance(resume, dict)
        tenant_id, execution_id = resume["tenant_id"], resume["execution_id"]
        units, done = resume["units"], resume["done"]
        deadline = TryDeadline(
            datetime.fromisoformat(resume["deadline"]),
            DeadlineBy(resume.get("deadline_by", DeadlineBy.TIMEOUT.value)),
            timedelta(seconds=float(resume.get("deadline_bound") or 0.0)),
        )
        args = self._validated()
        airflow_try = int(context["ti"].try_number)
        t = Try.start(
            ExecutionRef(tenant_id, execution_id),
            int(resume.get("attempt") or airflow_try),
            args,
            provider=self.provider,
            token=resume.get("token"),
            airflow_try_number=airflow_try,
        )
        self._active = t
        self._watching = [Unit.from_dict(u) for u in units]
        with self._failures_as_compute_errors(context, t):
            statuses = complete_statuses(
                t,
                self._watching,
                [UnitStatus.from_dict(s) for s in event.get("statuses", [])],
                self.make_backend,
            )
            # Only the trigger watched these units, so a unit it reports running, or already
            # succeeded, was first seen running while deferred: time it now. The time ends at
            # the start the provider reported (``running_since``), not at this resume.
            self._launch_timer.observe(
                self._store, t, statuses, phases=(UnitPhase.RUNNING, UnitPhase.SUCCEEDED)
            )
            if event.get("kind") == "error":
                error = ComputeError.model_validate(event["error"])
                self._fail(context, t, error.model_copy(update={"cleanup": left_running(statuses)}))
            return self._settle(
                context,
                t,
                [UnitStatus.from_dict(s) for s in done],
                statuses,
                deadline,
                timed_out=event.get("kind") == "timeout",
            )

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Any) -> Any:
        """Airflow's resume, plus one case: an Airflow that enforces the deferral's timeout
        (``execution_timeout``) resumes the try with ``TaskDeferralTimeout`` and no event. The
        try ends as at its own ``execution_timeout`` deadline (``lifecycle/deadline.py``)."""
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except TaskDeferralTimeout:
            if next_method != TRIGGER_FAIL_REPR:
                raise  # not Airflow's timeout signal: raised inside our own resume
            self.log.warning("Airflow ended the deferral at the task's execution_timeout")
            by = DeadlineBy.EXECUTION_TIMEOUT if self.execution_timeout else DeadlineBy.TIMEOUT
            return self._resume_from_ledger(context, by, timed_out=True)

    def _hold_for_invalid_arguments(self, context: Any, error: ComputeError) -> None:
        """Requirement 2.2: invalid configuration holds the tenant for investigation, also when
        our own validation caught it before any provider call (``lifecycle/arguments.py``). Not when the
        tenant id itself is invalid: there is no tenant to hold. The store's failure to record it
        (an unreachable or misconfigured store, a try in progress) is logged; the argument error
        is what the task fails with either way."""
        tenant_id = self.tenant_id
        try:
            tenant_id = store_checks.tenant_id(tenant_id)
        except ComputeConfigError:
            return
        execution_id: str | None = None
        with suppress(Exception):
            execution_id = store_checks.execution_id(self._execution_id(context, self.execution_id))
        try:
            held = self._store.hold_invalid_request(
                tenant_id, error, execution_id=execution_id, attempt=int(context["ti"].try_number)
            )
        except Exception as exc:
            self.log.warning("could not hold tenant %s for its invalid arguments: %s", tenant_id, exc)
            return
        self.log.error("tenant %s held for investigation: %s", held.tenant_id, error.message)

    def _resume_from_ledger(self, context: Any, by: DeadlineBy, *, timed_out: bool) -> dict[str, Any]:
        """Settle a resumed try that has no usable trigger event: its units from the ledger,
        described once, and the deadline taken as passed now."""
        self._active = None
        try:
            args = self._validated()
            execution = ExecutionRef(args.tenant_id, self._execution_id(context, args.execution_id))
        except ComputeConfigError as exc:
            operation = valid_or_none(self.operation, "operation")  # never the rejected value
            error = redact_error(exc.error.with_context(provider=self.provider, operation=operation))
            push_error(context, error)
            raise self._exception_for(exc.error, context) from None
        # The try that deferred, as the store numbered it: the newest operation this task
        # instance's try began. Its writes name it, so a newer try that began meanwhile (a
        # retry, a new DAG run of the execution) refuses them.
        airflow_try = int(context["ti"].try_number)
        ti = task_instance_of(context)
        ops = [
            op
            for op in self._store.operations(execution.tenant_id)
            if op.execution_id == execution.execution_id
        ]
        mine = next(
            (
                op
                for op in ops
                if ti is None or (op.airflow_ti == ti.key and op.airflow_try_number == airflow_try)
            ),
            None,
        )
        # Only a process that deferred leaves ``live_until``; a second process that took the try
        # over clears it, and this resume (of the first one's deferral) must not write as it.
        deferred = mine is not None and mine.live_until is not None
        t = Try.start(
            execution,
            mine.attempt if mine else (ops[0].attempt if ops else airflow_try),
            args,
            provider=self.provider,
            # No deferral of this try on record: a token no write matches, so none is accepted.
            token=mine.try_token if mine and deferred else (UNRECORDED_TRY if ops else None),
            airflow_try_number=airflow_try,
        )
        self._active = t
        with self._failures_as_compute_errors(context, t):
            done, watch = ledger_units(self._store, t)
            self._watching = watch
            statuses = complete_statuses(t, watch, [], self.make_backend)
            bound = self.execution_timeout if by is DeadlineBy.EXECUTION_TIMEOUT else None
            deadline = TryDeadline(datetime.now(UTC), by, bound or self._try_timeout(t))
            return self._settle(context, t, done, statuses, deadline, timed_out=timed_out)

    @contextmanager
    def _failures_as_compute_errors(self, context: Any, t: Try) -> Iterator[None]:
        """Whatever escapes a try leaves it as a recorded ComputeError (deferral passes through)."""
        try:
            yield
        except AirflowTaskTimeout:
            # execution_timeout of a blocking try: Airflow ends it (a deferred one ends at its
            # own deadline, ``_settle``). The same error either way; the units run on unless
            # on_kill_action="stop", and then they are stopped here, with the ledger, rather
            # than by Airflow's on_kill that follows.
            # Where the units stand as last polled; one never polled is pending, not running.
            with self._unless_superseded(t):
                seen = {(s.unit.index, s.unit.generation) for s in self._latest}
                watched = outcome.units_report(
                    [
                        *self._latest,
                        *(
                            UnitStatus(unit=u, phase=UnitPhase.PENDING)
                            for u in self._watching
                            if (u.index, u.generation) not in seen
                        ),
                    ]
                )
                error = outcome.timeout_error(
                    watched, timeout=self.execution_timeout or timedelta(0), execution_timeout=True
                )
                if self.on_kill_action == "stop" and self._watching:
                    error = roll_back(self._store, t, self.make_backend(), error, list(self._watching))
                    self._watching = []
                record_failure(context, t, error, store=lambda: self._store)
            raise
        except SupersededTryError as exc:
            self._superseded(context, t, exc)
        except ComputeOperationError as exc:
            if exc in self._raised:
                raise
            # A hook's error that no lifecycle step turned into the operation's failure yet.
            self._fail(context, t, exc.error)
        except Exception as exc:
            from airflow_compute_provider.normalize import from_exception

            self._fail(context, t, from_exception(exc))

    def _superseded(self, context: Any, t: Try, exc: SupersededTryError) -> NoReturn:
        """A newer try of this execution began (Airflow gave up on this one, or runs it in a
        second process): this one stops where it is, writes nothing more to the store and leaves
        the units to the newest try. Its task fails with CONFLICT, recorded nowhere but XCom."""
        self._active = None  # nothing to finish: the tenant and the operation are the newer try's
        t.log.error(_STOPPED[exc.reason] + "; it stops and changes nothing", newest=exc.newest)
        error = ComputeError(
            code=ErrorCode.CONFLICT,
            message=f"{exc.reason.replace('_', ' ')}: {exc}",
            root_cause=RootCause(provider=STORE_SOURCE, reason=exc.reason),
        )
        self._fail(context, t, error, record=False)

    @contextmanager
    def _unless_superseded(self, t: Try) -> Iterator[None]:
        try:
            yield
        except SupersededTryError as exc:
            self._active = None
            t.log.error(_STOPPED[exc.reason] + "; it changes nothing", newest=exc.newest)

    def _launch_and_wait(self, context: Any, t: Try) -> dict[str, Any]:
        backend = self.make_backend()
        request = self.launch_request(t.args)
        register_secrets(request)
        deadline = self._deadline(context, t)
        result = reconcile_and_launch(
            self._store, t, backend, request, conn_id=self._conn_id(), timer=self._launch_timer
        )
        if result.refused:
            self._fail(context, t, launch_failure(self._store, t, backend, result))
        adopted, launched = result.adopted, result.launched
        done = [s for s in adopted if s.phase is UnitPhase.SUCCEEDED]
        watch = [s.unit for s in adopted if s.phase is not UnitPhase.SUCCEEDED] + list(launched)
        self._watching = watch
        t.log.info(
            "compute units launched",
            adopted=[s.unit.resource_id for s in adopted],
            launched=[u.resource_id for u in launched],
            deadline=deadline.at.isoformat(),
            deadline_by=deadline.by.value,
            try_started=(started.isoformat() if (started := _try_started(context)) else None),
        )
        if not watch:
            return self._settle(context, t, done, [], deadline, timed_out=False)
        if self.deferrable:
            # No heartbeat while deferred: the try is alive until its deadline, when the trigger
            # fires at the latest (the reconciler counts stale_after from there).
            if t.ref is not None:
                self._store.heartbeat(t.tenant_id, t.execution_id, by=t.ref, live_until=deadline.at)
            self.defer(
                trigger=status_trigger(t, backend, watch, done, deadline, secrets=secret_values(request)),
                method_name="execute_complete",
            )
        statuses, timed_out = poll_until_settled(
            self._store,
            t,
            backend,
            watch=watch,
            done=done,
            deadline=deadline.at,
            timer=self._launch_timer,
            latest=self._latest,
            on_poll=lambda: self._container_logs(t).stream(watch),
        )
        return self._settle(context, t, done, statuses, deadline, timed_out=timed_out)

    def _settle(
        self,
        context: Any,
        t: Try,
        done: list[UnitStatus],
        statuses: list[UnitStatus],
        deadline: TryDeadline,
        *,
        timed_out: bool,
    ) -> dict[str, Any]:
        everything = done + statuses
        logs = self._container_logs(t)
        logs.stream([s.unit for s in everything], final=True)
        progress = assess_try(t, everything, deadline.at, datetime.now(UTC))
        self._launch_timer.observe(self._store, t, statuses)
        follow_statuses(self._store, t, statuses, conn_id=self._conn_id())
        if progress.state is Settlement.SUCCEEDED:
            store = self._store
            store.record_outcome(t.tenant_id, t.execution_id, None, by=t.ref)
            store.finish_operation(t.tenant_id, t.execution_id, None, will_retry=False, by=t.ref)
            self._close_logs(t)
            self._active = None
            t.log.info("compute operation succeeded", units=len(everything))
            return outcome.success_result(t.execution_id, everything)
        count = t.args.count
        if progress.state is Settlement.FAILED:
            failures = [
                (
                    s.unit.index,
                    s.unit.resource_id,
                    logs.with_last_lines(err, s.unit, started=bool(s.running_since)),
                )
                for s, err in progress.failures
            ]
            report = outcome.units_report(everything, failures)
            error = outcome.failure_error(report, count=count)
            stuck = [s.unit for s, _ in progress.failures if not s.phase.terminal]
            if error.code is ErrorCode.PARTIAL_FAILURE:
                running = [s.unit for s in everything if not s.phase.terminal and s.unit not in stuck]
                error = handle_partial(
                    self._store, t, self.make_backend(), error, running=running, also_stop=stuck
                )
            elif stuck:
                error = roll_back(self._store, t, self.make_backend(), error, stuck)
            self._fail(context, t, error)
        if not timed_out and progress.state is Settlement.WAITING:
            # The trigger fired early (it never should); treat it like a timeout, never as success.
            t.log.warning("trigger fired before the operation settled")
        report = outcome.units_report(everything)
        if deadline.by is DeadlineBy.EXECUTION_TIMEOUT:
            # The task's execution_timeout, which Airflow does not enforce on a deferred try:
            # the same end as a blocking try's (``_failures_as_compute_errors``).
            error = outcome.timeout_error(report, timeout=deadline.bound, execution_timeout=True)
            left = [s.unit for s in everything if not s.phase.terminal]
            if self.on_kill_action == "stop" and left:
                error = roll_back(self._store, t, self.make_backend(), error, left)
            self._fail(context, t, error)
        self._fail(context, t, outcome.timeout_error(report, timeout=self._try_timeout(t)))

    # -- failure --------------------------------------------------------------------------------

    def _fail(self, context: Any, t: Try, error: ComputeError, *, record: bool = True) -> NoReturn:
        """Record the try's failure (``lifecycle/failure.py``) and raise it; ``record=False`` leaves the
        state store alone (the tenant refused the try)."""
        error = record_failure(context, t, error, store=(lambda: self._store) if record else None)
        if record:
            self._close_logs(t)
        exception = self._exception_for(error, context)
        self._raised.append(exception)
        raise exception

    def _exception_for(self, error: ComputeError, context: Any = None) -> ComputeOperationError:
        return exception_for(error, getattr(self, "retry_policy", None), context)

    # -- Airflow's decision, then the tenant ----------------------------------------------------

    def finish_after_decision(self, context: Any, *, will_retry: bool) -> None:
        """Airflow decided whether a retry follows; ``AfterAirflowDecided`` calls this from the
        retry and failure callbacks, and ``lifecycle/decisions.py`` finishes the operation."""
        decisions.finish_after_decision(
            self._active,
            context,
            will_retry=will_retry,
            store=lambda: self._store,
            make_backend=self.make_backend,
        )
        self._active = None

    def on_kill(self) -> None:
        if self.on_kill_action == "stop" and self._watching:
            self.make_backend().stop(self._watching, reason="task killed in Airflow")

    # -- helpers --------------------------------------------------------------------------------

    def _container_logs(self, t: Try) -> ContainerLogs:
        """This try's reader of container output, resuming where the previous try stopped."""
        # one reading per try: an operator object Airflow reuses for the next try starts afresh
        if self._logs is None or self._logs_try != (t.attempt, t.token):
            self._logs_try = (t.attempt, t.token)
            since = None
            if t.args.get_logs:
                with suppress(Exception):  # the store's trouble shows elsewhere; logs print all
                    since = previous_read(self._store, t.tenant_id, t.execution_id, t.attempt)
            self._logs = ContainerLogs(self.make_log_reader, t.args, self.log, since)
        return self._logs

    def _close_logs(self, t: Try) -> None:
        """The try's outcome is recorded: print the lines up to that moment (``close``)."""
        if self._logs is None or self._logs_try != (t.attempt, t.token):
            return
        until = None
        with suppress(Exception):
            until = outcome_time(self._store, t.tenant_id, t.execution_id, t.attempt)
        self._logs.close(until)

    @cached_property
    def _store(self) -> TenantStateStore:
        from airflow_compute_provider.state.config import open_state_store

        return open_state_store(self.state_conn_id)

    def _conn_id(self) -> str | None:
        return None

    def _execution_id(self, context: Any, execution_id: str | None) -> str:
        """The author's execution id, else ``dag_id:run_id:task_id:map_index``."""
        if execution_id:
            return str(execution_id)
        ti = context["ti"]
        map_index = getattr(ti, "map_index", -1)
        return f"{ti.dag_id}:{ti.run_id}:{ti.task_id}:{map_index}"

    def _deadline(self, context: Any, t: Try) -> TryDeadline:
        """When this try stops waiting. A deferred try is bounded by ``execution_timeout`` too
        (Airflow does not bound it: ``lifecycle/deadline.py``); a blocking one is ended by Airflow itself."""
        return try_deadline(
            now=datetime.now(UTC),
            timeout=self._try_timeout(t),
            started_at=_try_started(context),
            execution_timeout=self.execution_timeout if self.deferrable else None,
        )

    def _try_timeout(self, t: Try) -> timedelta:
        earlier_timeouts = self._store.timeouts_so_far(t.tenant_id, t.execution_id)
        factor = t.args.timeout_factor or 1.0
        policy = find_compute_policy(getattr(self, "retry_policy", None))
        policy_factor = getattr(policy, "timeout_factor_for", None)
        if t.args.timeout_factor is None and callable(policy_factor):
            factor = float(policy_factor(ErrorCode.OPERATION_TIMEOUT))
        timeout: timedelta = t.args.timeout * (factor**earlier_timeouts)
        cap = t.args.max_timeout
        return min(timeout, cap) if cap else timeout


def _try_started(context: Any) -> datetime | None:
    """When Airflow started this try (``ti.start_date``: the worker's, once the API server took
    the start), or ``None`` where it does not say."""
    started = getattr(context["ti"], "start_date", None)
    if isinstance(started, str):
        with suppress(ValueError):
            started = datetime.fromisoformat(started)
    return started if isinstance(started, datetime) and started.tzinfo is not None else None


def _usable_resume(resume: Any) -> bool:
    """Whether a trigger event's ``resume`` holds what ``execute_complete`` reads."""
    needed = ("tenant_id", "execution_id", "units", "done", "deadline")
    return isinstance(resume, dict) and all(key in resume for key in needed)


_COMMON = parameters_doc(ComputeArguments, ComputeArguments.model_fields, BaseComputeOperator.template_fields)
BaseComputeOperator.__doc__ = f"{(BaseComputeOperator.__doc__ or '').rstrip()}\n\n{_COMMON}\n"

__all__ = ["XCOM_ERROR_KEY", "BaseComputeOperator", "ComputeTaskAborted"]
