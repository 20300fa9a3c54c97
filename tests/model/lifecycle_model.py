"""The lifecycle model: Airflow's real ways of running a compute task, against the invariants.

A hypothesis ``RuleBasedStateMachine`` drives ``MemoryComputeOperator`` (the real
``BaseComputeOperator`` lifecycle on the in-memory provider), the real ``SqlTenantStateStore``
(SQLite, in memory: one database per example) and the real ``Reconciler`` the way Airflow and a
platform can:

    tries         the next try of a DAG run (a retry, or a clear after success or failure); a new
                  DAG run of the same (custom) execution id, whose Airflow try number restarts at
                  1; the same try run twice (Airflow's double run: same try number, another
                  process, another token); an older try's process going on after a newer try
                  began (a zombie)
    processes     each runs to its next store or provider call and stops there; the model lets
                  it go on, crashes it, or raises its ``execution_timeout`` there
    triggers      a deferred try's trigger fires (settled, its deadline, an error); the resume
                  runs in a new process; or Airflow resumes it with ``TaskDeferralTimeout``
                  (an Airflow that enforces the deferral's timeout)
    the provider  units succeed, fail, get interrupted, vanish; refusals, lost answers, 5xx that
                  landed, failed calls, a stop refused
    maintenance   a reconciler run after some time passed (none, a minute, past ``stale_after``,
                  hours), with tries deferred or blocked meanwhile; a platform operator's forced
                  release of a stale hold

After every step it checks DESIGN's invariants (``@invariant`` methods and the checks named
``_check_*``); every violation fails the example, which hypothesis then shrinks:

    two_live_generations              at most one live generation per unit index
    tenant_status                     the tenant is where the transition table lets the newest
                                      try's outcome put it; a hold is the newest try's
    tries_numbered_by_the_store       an execution's tries are 1, 2, 3... whatever Airflow's try
                                      number (a new DAG run is the next try)
    a_superseded_try_wrote            a step of a try that is no longer the newest (a zombie, the
                                      first process of a double run) changed neither the tenant,
                                      nor an operation, nor the ledger
    a_live_hold_was_broken            a reconciler run ended the hold of a try that showed a sign
                                      of life (a write, or a deferral's deadline) within
                                      ``stale_after``
    live_unit_unknown_to_the_ledger   after a reconciler run with no try left (and no live hold),
                                      every live unit is in the ledger with its resource id
    success_with_units_not_done       a succeeded try's units succeeded (or run, for
                                      ``wait_for="running"``)
    a_succeeded_unit_relaunched       a unit whose newest generation succeeded is launched again
                                      only by a fresh start (the newest earlier try succeeded: a
                                      clear after success); any other try adopts it
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from airflow_compute_provider.errors import ComputeError, ComputeOperationError, ErrorCode
from airflow_compute_provider.hooks.base import ExecutionRef, Unit, UnitPhase, UnitStatus
from airflow_compute_provider.recovery import Reconciler, RecoverySettings
from airflow_compute_provider.recovery.settings import MIN_STALE_AFTER
from airflow_compute_provider.state import SqlTenantStateStore
from airflow_compute_provider.state.rules import finish_target
from airflow_compute_provider.state.schema import operations, resources, tenants, transitions
from airflow_compute_provider.state.status import TENANT_TRANSITIONS, TenantEvent, TenantStatus
from airflow_compute_provider.testing.memory import MemoryCloud, MemoryComputeBackend
from airflow_compute_provider.testing.operator import MemoryComputeOperator
from airflow_compute_provider.triggers.progress import Settlement, assess
from tests.model.harness import CLOCK, AirflowTaskTimeout, Crash, Gated, ModelTry, Process
from tests.model.support import factory

EXECUTION_ID = "model:custom-execution-id"
TENANT = "model"
#: the maintenance DAG's ``stale_after`` in the model: the smallest the settings allow
STALE_AFTER = MIN_STALE_AFTER
#: how long the model lets pass before a maintenance run: none, a minute, past stale_after, hours
GAPS = (0.0, 60.0, STALE_AFTER.total_seconds() + 30.0, 3 * 3600.0)
MAX_LIVE_PROCESSES = 3


@dataclass
class Tally:
    """What every example of the run did (printed by ``tests/conftest.py``)."""

    examples: int = 0
    steps: int = 0
    violations: int = 0
    ran: bool = False
    #: how often each check had something to check (evidence the search reaches those paths)
    checked: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        return f"lifecycle model: {self.examples} examples, {self.steps} steps, {self.violations} violations"

    def coverage(self) -> str:
        return "checked: " + ", ".join(f"{n} {what}" for what, n in sorted(self.checked.items()))


TALLY = Tally()


class Violation(AssertionError):
    pass


@dataclass(eq=False)
class PendingTrigger:
    """A deferred try's trigger, until it fires or Airflow cancels it (a new try of its run)."""

    model_try: ModelTry
    trigger: Any


@functools.cache
def shared_store() -> SqlTenantStateStore:
    """The store every example uses: SQLite in memory (no file, no fsync), one engine for the
    whole run, since a new engine compiles every statement again (most of an example's time).
    Each example starts on empty tables (``teardown`` empties them)."""
    return SqlTenantStateStore("sqlite://")


def _empty(store: SqlTenantStateStore) -> None:
    def wipe(conn: Any) -> None:
        for table in (transitions, resources, operations, tenants):
            conn.execute(table.delete())

    store._db.write("model: empty the tables", wipe)


class LifecycleModel(RuleBasedStateMachine):
    #: whether this machine's examples count in ``TALLY`` (the hand-played scenarios do not)
    counted = True

    def __init__(self) -> None:
        super().__init__()
        if self.counted:
            TALLY.examples += 1
            TALLY.ran = True
        self.store = shared_store()
        self.tenant = TENANT
        self.cloud = MemoryCloud(f"model-{TALLY.examples}")
        self.execution = ExecutionRef(self.tenant, EXECUTION_ID)
        self.processes: list[Process] = []
        self.pids = itertools.count(1)
        #: Airflow's side: the current DAG run and its try number (0: no try yet)
        self.run = 1
        self.try_number = 0
        self.triggers: list[PendingTrigger] = []
        self.trace: list[str] = []
        self.config: dict[str, Any] = {}
        #: resource ids of the units the model has seen launched
        self.seen_units: set[str] = set()
        #: violations seen inside a process (raised there, the lifecycle would catch them)
        self.found: list[tuple[str, str]] = []

    # -- set-up ------------------------------------------------------------------------------------

    @initialize(
        count=st.integers(1, 3),
        wait_for=st.sampled_from(["completion", "running"]),
        on_partial_failure=st.sampled_from(["rollback", "retry_failed"]),
        timeout=st.sampled_from([60, 600]),
    )
    def configure(self, count: int, wait_for: str, on_partial_failure: str, timeout: int = 60) -> None:
        """``timeout``: a try shorter than ``stale_after``, or one that waits through several
        heartbeats (blocking) or is alive until a deadline long after its start (deferred)."""
        self.config = {
            "count": count,
            "wait_for": wait_for,
            "on_partial_failure": on_partial_failure,
            "timeout": timedelta(seconds=timeout),
        }
        self._note(f"configure {self.config}")

    def _operator(self, deferrable: bool) -> Any:
        op = MemoryComputeOperator(
            task_id="model",
            tenant_id=self.tenant,
            operation="provision",
            execution_id=EXECUTION_ID,
            cloud=self.cloud.name,
            deferrable=deferrable,
            poll_interval=20.0,
            pending_grace_period=timedelta(seconds=30),
            **self.config,
        )
        op.__dict__["_store"] = Gated(self.store, "store")
        cloud = self.cloud
        after = self._after_call
        op.make_backend = lambda: Gated(MemoryComputeBackend(cloud), "backend", after)  # type: ignore[method-assign]
        return op

    # -- Airflow starts tries ------------------------------------------------------------------------

    def _start(self, model_try: ModelTry, body: Any, op: Any, will_retry: bool) -> Process:
        process = Process(next(self.pids), model_try, op, body, will_retry)
        self.processes.append(process)
        return process

    def _execute(self, deferrable: bool, will_retry: bool) -> Process:
        op = self._operator(deferrable)
        return self._start(ModelTry(self.run, self.try_number), op.execute, op, will_retry)

    @precondition(lambda self: self._room())
    @rule(deferrable=st.booleans(), will_retry=st.booleans())
    def new_try(self, deferrable: bool, will_retry: bool) -> None:
        """Airflow starts the run's next try: a retry, a clear (after success or failure), or a
        try rescheduled while its previous process still runs (that one is now a zombie). A new
        try of a run cancels that run's trigger."""
        self.try_number += 1
        self.triggers = [t for t in self.triggers if t.model_try.run != self.run]
        self._drop_unstarted_deferral_timeouts()
        p = self._execute(deferrable, will_retry)
        self._note(f"new_try p{p.pid} run={self.run} try={self.try_number} deferrable={deferrable}")

    @precondition(lambda self: self.try_number > 0 and self._room())
    @rule(deferrable=st.booleans(), will_retry=st.booleans())
    def new_dag_run(self, deferrable: bool, will_retry: bool) -> None:
        """A new DAG run of the same custom execution id: Airflow's try number restarts at 1; the
        store makes it the execution's next try. The older run's trigger (if any) fires on."""
        self.run += 1
        self.try_number = 1
        TALLY.checked["new DAG runs"] += 1
        p = self._execute(deferrable, will_retry)
        self._note(f"new_dag_run p{p.pid} run={self.run} try=1 deferrable={deferrable}")

    @precondition(lambda self: self.try_number > 0 and self._room())
    @rule(deferrable=st.booleans(), will_retry=st.booleans())
    def same_try_again(self, deferrable: bool, will_retry: bool) -> None:
        """A second process runs the run's newest try (Airflow's double run after it thought the
        first worker dead): same try number, another token."""
        self.triggers = [t for t in self.triggers if t.model_try.run != self.run]
        self._drop_unstarted_deferral_timeouts()
        TALLY.checked["double runs"] += 1
        p = self._execute(deferrable, will_retry)
        self._note(f"same_try_again p{p.pid} run={self.run} try={self.try_number}")

    def _drop_unstarted_deferral_timeouts(self) -> None:
        """A ``TaskDeferralTimeout`` resume not yet started when another process of the same task
        instance starts never runs: Airflow's API refuses a workload whose task instance is no
        longer queued. (Unlike a trigger's resume, it carries nothing of the process that
        deferred: it resumes whatever the task instance's current deferral is.)"""
        for p in self.processes:
            if p.alive and p.at == "start" and p.deferral_timeout and p.model_try.run == self.run:
                p.kill()
                self._note(f"p{p.pid} never starts: its task instance runs again")

    # -- processes go on, crash, time out --------------------------------------------------------------

    def _pick(self, which: int, *, started: bool = False) -> Process | None:
        """The ``which``-th newest live process (0: the newest, where a shrunk example points)."""
        alive = [p for p in self.processes if p.alive and (not started or (p.in_execute and p.at != "start"))]
        return alive[-1 - which % len(alive)] if alive else None

    def _room(self) -> bool:
        """At most three live processes at once: more zombies add steps, not paths."""
        return sum(p.alive for p in self.processes) < MAX_LIVE_PROCESSES

    def _newest_try(self) -> ModelTry | None:
        begun = [p.model_try for p in self.processes if p.model_try.began is not None]
        return max(begun, key=lambda t: t.began or 0, default=None)

    def _superseded(self, process: Process) -> bool:
        """The process's try began, and a newer try began after it: none of its writes may count."""
        mine = process.model_try
        return mine.began is not None and self._newest_try() is not mine

    def _resume_current_deferral(self, process: Process) -> None:
        """A ``TaskDeferralTimeout`` resume acts for its task instance's current deferral, which
        may be a later process's than the trigger it was picked from: when the newest process
        of that try (in the store's order of begins) has deferred since, the resume is that
        try's. A newest process still running keeps the resume on the older try, a zombie."""
        mine = process.model_try
        same = [
            p
            for p in self.processes
            if p is not process
            and (p.model_try.run, p.model_try.try_number) == (mine.run, mine.try_number)
            and p.model_try.began is not None
        ]
        newest = max(same, key=lambda p: p.model_try.began or 0, default=None)
        if (
            newest is not None
            and newest.model_try is not mine
            and newest.result
            and newest.result[0] == "deferred"
        ):
            process.model_try = newest.model_try
            self._note(f"p{process.pid} resumes p{newest.pid}'s deferral")

    @contextlib.contextmanager
    def _stepping(self, process: Process) -> Any:
        """Around a step of ``process``: a superseded try's step must change nothing in the store."""
        if process.deferral_timeout and process.at == "start":
            self._resume_current_deferral(process)
        zombie = self._superseded(process)
        before = self._snapshot() if zombie else None
        if zombie:
            TALLY.checked["superseded-try steps"] += 1
        yield
        if zombie and self._snapshot() != before:
            self._violation("a_superseded_try_wrote", f"p{process.pid} changed the store at {process.at}")
        if self.found:
            self._violation(*self.found.pop(0))
        self._after(process)

    def _after_call(self, process: Process, call: str, _kwargs: dict[str, Any], _result: Any) -> None:
        if call == "backend.launch":
            self._check_no_succeeded_unit_relaunched(process)

    def drive(self, process: Process, *, calls: int = 500, until: str | None = None) -> None:
        """Let ``process`` make up to ``calls`` calls, or run until it waits at gate ``until``
        (``store.record_intent``, ``backend.launch``, ``sleep``...); the zombie check applies."""
        with self._stepping(process):
            for _ in range(calls):
                if not process.alive:
                    break
                process.step()
                if until is not None and process.at == until:
                    break
        self._note(f"p{process.pid} ({calls} calls) -> {process.at} {self._result(process)}")

    @precondition(lambda self: any(p.alive for p in self.processes))
    @rule(which=st.integers(0, 3), calls=st.integers(1, 12))
    def advance(self, which: int, calls: int) -> None:
        process = self._pick(which)
        if process is not None:
            self.drive(process, calls=calls)

    @precondition(lambda self: any(p.alive for p in self.processes))
    @rule(which=st.integers(0, 3))
    def run_to_end(self, which: int) -> None:
        process = self._pick(which)
        if process is not None:
            self.drive(process)

    @precondition(lambda self: any(p.alive for p in self.processes))
    @rule(which=st.integers(0, 3))
    def crash(self, which: int) -> None:
        process = self._pick(which)
        if process is None:
            return
        process.kill()
        self._note(f"crash p{process.pid} at {process.at}")

    @precondition(lambda self: any(p.alive and p.in_execute and p.at != "start" for p in self.processes))
    @rule(which=st.integers(0, 3))
    def execution_timeout(self, which: int) -> None:
        """Airflow's execution_timeout fires in a blocking try (a signal: at any call)."""
        process = self._pick(which, started=True)
        if process is None:
            return
        with self._stepping(process):
            process.throw(AirflowTaskTimeout("execution_timeout"))
        self._note(f"execution_timeout p{process.pid} -> {self._result(process)}")

    def _after(self, process: Process) -> None:
        if process.result is None:
            return
        kind, value = process.result
        if kind == "deferred":
            self.triggers.append(PendingTrigger(process.model_try, value))
        if kind == "succeeded" and not self._superseded(process):
            TALLY.checked["successes"] += 1
            self._check_success(value)
        if kind == "failed" and "superseded_try" in str(getattr(value, "error", "")):
            TALLY.checked["tries refused as superseded"] += 1

    # -- the triggerer ---------------------------------------------------------------------------------

    @precondition(lambda self: bool(self.triggers))
    @rule(which=st.integers(0, 2), kind=st.sampled_from(["settled", "timeout"]), will_retry=st.booleans())
    def trigger_fires(self, which: int, kind: str, will_retry: bool) -> None:
        """The trigger yields its one event, and Airflow resumes the try in a new process.
        ``timeout``: the try's deadline passed first."""
        if not self.triggers:
            return
        pending = self.triggers[which % len(self.triggers)]
        trigger = pending.trigger
        units = [Unit.from_dict(u) for u in trigger.units]
        deadline = datetime.fromisoformat(trigger.deadline)
        try:
            statuses = MemoryComputeBackend(self.cloud).describe(units)
        except ComputeOperationError as exc:
            event: dict[str, Any] = {"kind": "error", "statuses": [], "resume": trigger.resume}
            event["error"] = exc.error.to_json_dict()
        else:
            state = self._assess(statuses, deadline)
            if kind == "settled" and state not in (Settlement.SUCCEEDED, Settlement.FAILED):
                return  # not settled yet: the trigger keeps waiting
            if kind == "timeout":
                CLOCK.at_least(deadline)
            event = {"kind": kind, "statuses": [s.to_dict() for s in statuses], "resume": trigger.resume}
        self.triggers.remove(pending)
        op = self._operator(True)
        resume = functools.partial(op.execute_complete, event=event)
        p = self._start(pending.model_try, resume, op, will_retry)
        self._note(f"trigger_fires {event['kind']} -> p{p.pid} (run {pending.model_try.run})")

    @precondition(lambda self: bool(self.triggers))
    @rule(which=st.integers(0, 2), will_retry=st.booleans())
    def task_deferral_timeout(self, which: int, will_retry: bool) -> None:
        """An Airflow that enforces the deferred try's timeout resumes it with
        ``TaskDeferralTimeout`` (``resume_execution`` with ``__fail__``): the lifecycle ends it
        like its own deadline, reading what it watches from the ledger."""
        pending = self.triggers.pop(which % len(self.triggers))
        TALLY.checked["deferral timeouts"] += 1
        CLOCK.at_least(datetime.fromisoformat(pending.trigger.deadline))
        op = self._operator(True)

        def resume(context: dict[str, Any]) -> Any:
            return op.resume_execution("__fail__", {"error": "Trigger timeout"}, context)

        p = self._start(pending.model_try, resume, op, will_retry)
        p.deferral_timeout = True
        self._note(f"task_deferral_timeout -> p{p.pid} (run {pending.model_try.run})")

    def _assess(self, statuses: list[UnitStatus], deadline: datetime) -> Settlement:
        return assess(
            statuses,
            wait_for=self.config["wait_for"],
            now=CLOCK.now,
            deadline=deadline,
            pending_grace_period=timedelta(seconds=30),
        ).state

    # -- the provider ----------------------------------------------------------------------------------

    @precondition(lambda self: any(u.live for u in self.cloud.units.values()))
    @rule(
        which=st.integers(0, 8),
        fate=st.sampled_from(["running", "succeeded", "failed", "interrupted", "vanished"]),
    )
    def unit_changes(self, which: int, fate: str) -> None:
        live = [u for u in self.cloud.units.values() if u.live]
        if not live:
            return
        unit = live[which % len(live)]
        if fate == "running":
            self.cloud.set_phase(unit.resource_id, UnitPhase.RUNNING)
        elif fate == "succeeded":
            self.cloud.succeed(unit.resource_id)
        elif fate == "failed":
            self.cloud.fail(unit.resource_id)
        elif fate == "interrupted":
            self.cloud.fail(unit.resource_id, ErrorCode.INFRASTRUCTURE_INTERRUPTED, None)
        else:
            self.cloud.vanish(unit.resource_id)
        self._note(f"unit {unit.index}g{unit.generation} {fate}")

    @precondition(lambda self: any(u.live for u in self.cloud.units.values()))
    @rule(fate=st.sampled_from(["succeeded", "running", "failed"]))
    def every_unit(self, fate: str) -> None:
        """Every live unit at once (the usual end of the work, in one step)."""
        for unit in [u for u in self.cloud.units.values() if u.live]:
            if fate == "succeeded":
                self.cloud.succeed(unit.resource_id)
            elif fate == "running":
                self.cloud.set_phase(unit.resource_id, UnitPhase.RUNNING)
            else:
                self.cloud.fail(unit.resource_id, ErrorCode.INFRASTRUCTURE_INTERRUPTED, None)
        self._note(f"every unit {fate}")

    @rule(
        fault=st.sampled_from(
            [
                "refuse_capacity",
                "refuse_invalid",
                "lose_answer",
                "land_503",
                "fail_find",
                "fail_describe",
                "fail_launch",
                "fail_stop",
                "refuse_stop",
                "hold_token",
            ]
        ),
        skip=st.integers(0, 2),
    )
    def provider_fault(self, fault: str, skip: int) -> None:
        cloud = self.cloud
        if fault == "refuse_capacity":
            cloud.refuse_next(ComputeError(code=ErrorCode.INSUFFICIENT_CAPACITY, message="RESOURCE:CPU"))
        elif fault == "refuse_invalid":
            cloud.refuse_next(
                ComputeError(
                    code=ErrorCode.INVALID_CONFIGURATION,
                    message="bad request",
                    root_cause={"http_status": 400},
                )
            )
        elif fault == "lose_answer":
            cloud.lose_next_answer()
        elif fault == "land_503":
            cloud.land_next_then_fail(
                ComputeError(
                    code=ErrorCode.PROVIDER_TEMPORARILY_UNAVAILABLE,
                    message="503",
                    root_cause={"http_status": 503},
                )
            )
        elif fault == "refuse_stop":
            cloud.refuse_next_stop()
        elif fault == "hold_token":
            cloud.hold_next_token()
        else:
            cloud.fail_next_call(fault.removeprefix("fail_"), skip=skip)
        self._note(f"provider_fault {fault} skip={skip}")

    # -- maintenance -----------------------------------------------------------------------------------

    @precondition(lambda self: self.try_number > 0)
    @rule(gap=st.sampled_from(GAPS))
    def reconciler_runs(self, gap: float) -> None:
        """A maintenance run (the reconcile / cleanup operator), ``gap`` seconds after the last
        step: tries blocked or deferred meanwhile showed the signs of life they showed. The
        provider answers well. A hold whose try was alive within ``stale_after`` (a write, or a
        deferral's deadline) must survive it; a stale one may be ended (stale-hold release)."""
        CLOCK.advance(gap)
        self.cloud.clear_faults()
        tenant = self.store.get_tenant(self.tenant)
        newest = self._newest_try()
        idle = newest.idle(CLOCK.now) if newest is not None else None
        live_hold = tenant is not None and tenant.held and idle is not None and idle < STALE_AFTER
        before = self._hold_snapshot() if live_hold else None
        Reconciler(self.store, backend_factory=factory(self.cloud), sleep=lambda _s: None).run(
            RecoverySettings(tenant_id=self.tenant, stale_after=STALE_AFTER)
        )
        self._note(f"reconciler_runs +{gap:g}s (live hold: {live_hold})")
        held_after = self.store.get_tenant(self.tenant)
        if live_hold:
            TALLY.checked["live holds kept by a reconciler run"] += 1
        elif tenant is not None and tenant.held and held_after is not None and not held_after.held:
            TALLY.checked["stale holds ended by a reconciler run"] += 1
        if live_hold and self._hold_snapshot() != before:
            self._violation(
                "a_live_hold_was_broken", f"its try showed a sign of life {idle} ago: {before} -> now"
            )
        tenant = self.store.get_tenant(self.tenant)
        no_try_left = not any(p.alive for p in self.processes) and not self.triggers
        if no_try_left and (tenant is None or not tenant.held):
            self._check_every_live_unit_is_known()

    @precondition(lambda self: self.try_number > 0)
    @rule()
    def operator_releases(self) -> None:
        """A platform operator frees the tenant (a stale hold, or one held for investigation)."""
        tenant = self.store.get_tenant(self.tenant)
        if tenant is None or tenant.status is TenantStatus.READY:
            return
        self.store.release(self.tenant, "model: released by an operator", force=True)
        self._note("operator_releases")

    # -- invariants ------------------------------------------------------------------------------------

    @invariant()
    def count_step(self) -> None:
        TALLY.steps += 1

    @invariant()
    def at_most_one_live_generation_per_unit(self) -> None:
        live: dict[int, list[int]] = {}
        for unit in self.cloud.of_execution(self.execution):
            if unit.live:
                live.setdefault(unit.index, []).append(unit.generation)
        doubled = {i: g for i, g in live.items() if len(g) > 1}
        if doubled:
            self._violation("two_live_generations", f"unit index -> live generations {doubled}")

    @invariant()
    def tenant_is_where_the_newest_try_left_it(self) -> None:
        ops = [op for op in self.store.operations(self.tenant) if op.execution_id == EXECUTION_ID]
        if not ops:
            return
        attempts = sorted(op.attempt for op in ops)
        if attempts != list(range(1, len(ops) + 1)):
            self._violation("tries_numbered_by_the_store", f"attempts {attempts}")
        tenant = self.store.get_tenant(self.tenant)
        if tenant is None:
            return
        newest = max(ops, key=lambda op: op.attempt)
        allowed = _allowed_tenant_statuses(newest)
        if tenant.status not in allowed:
            self._violation(
                "tenant_status",
                f"tenant {tenant.status.value} after try {newest.attempt} ({newest.status.value}, "
                f"error {newest.error_code}, will_retry {newest.will_retry}); "
                f"allowed {sorted(s.value for s in allowed)}",
            )
        if tenant.held and tenant.attempt != newest.attempt:
            self._violation("tenant_status", f"held by try {tenant.attempt}, the newest is {newest.attempt}")

    def _check_every_live_unit_is_known(self) -> None:
        TALLY.checked["ledgers complete after a reconciler run"] += 1
        rows = {
            (e.unit_index, e.generation): e.resource_id for e in self.store.ledger(self.tenant, EXECUTION_ID)
        }
        unknown = [
            f"{u.index}g{u.generation} ({u.resource_id})"
            for u in self.cloud.of_execution(self.execution)
            if u.live and rows.get((u.index, u.generation)) != u.resource_id
        ]
        if unknown:
            self._violation("live_unit_unknown_to_the_ledger", f"after a reconciler run: {unknown}")

    def _check_no_succeeded_unit_relaunched(self, process: Process) -> None:
        """A unit whose newest generation succeeded (and the provider or the ledger still says
        so) gets a new generation only from a fresh start: a try whose newest earlier try
        succeeded (a clear after success). Any other try adopts it (DESIGN, step 3)."""
        key = self.execution.key
        units = [u for u in self._all_units() if u.execution_key == key]
        new = [u for u in units if u.resource_id not in self.seen_units]
        self.seen_units.update(u.resource_id for u in units)
        if not new:
            return
        ledger = {(e.unit_index, e.generation): e for e in self.store.ledger(self.tenant, EXECUTION_ID)}
        mine = process.model_try.attempt or 0
        earlier = [op for op in self.store.operations(self.tenant) if op.attempt < mine]
        fresh = bool(earlier) and max(earlier, key=lambda op: op.attempt).status.value == "succeeded"
        TALLY.checked["launches"] += 1
        for unit in new:
            before = [u for u in units if u.index == unit.index and u.generation < unit.generation]
            if not before or fresh:
                continue
            intent = ledger.get((unit.index, unit.generation))
            if intent is not None and intent.attempts > 1:
                # A resent intent: an earlier try (a fresh start that died before its launch
                # landed) chose this generation; sending it is that clear's re-run, not a new one.
                continue
            # The newest earlier generation: of the provider's units and the ledger's rows
            # together (a refused generation exists only in the ledger).
            gen = max(
                [u.generation for u in before]
                + [g for (i, g) in ledger if i == unit.index and g < unit.generation]
            )
            prior = next((u for u in before if u.generation == gen), None)
            row = ledger.get((unit.index, gen))
            on_provider = (
                prior is not None
                and prior.resource_id in self.cloud.units
                and prior.phase is UnitPhase.SUCCEEDED
            )
            if on_provider or (row is not None and row.status.value == "succeeded"):
                self.found.append(
                    (
                        "a_succeeded_unit_relaunched",
                        f"p{process.pid} (try {mine}) launched {unit.index}g{unit.generation} "
                        f"over {unit.index}g{gen}, which succeeded",
                    )
                )

    def _check_success(self, result: dict[str, Any]) -> None:
        count = self.config["count"]
        wanted = {UnitPhase.SUCCEEDED} | (
            {UnitPhase.RUNNING} if self.config["wait_for"] == "running" else set()
        )
        units = result.get("units", [])
        bad = []
        if sorted(u["index"] for u in units) != list(range(count)):
            bad.append(f"indexes {[u['index'] for u in units]}")
        for u in units:
            known = next((m for m in self._all_units() if m.resource_id == u["resource_id"]), None)
            if known is None or not wanted & set(known.history):
                bad.append(f"unit {u['index']} {u['resource_id']}: {known.history if known else 'unknown'}")
        if bad:
            self._violation("success_with_units_not_done", "; ".join(bad))

    # -- helpers ---------------------------------------------------------------------------------------

    def _all_units(self) -> list[Any]:
        return list(self.cloud.units.values()) + list(self.cloud.gone.values())

    def _snapshot(self) -> tuple[Any, ...]:
        """The tenant, the operations and the ledger, as far as a try's writes can change them."""
        rows = self.store.ledger(self.tenant, EXECUTION_ID)
        return (
            self._hold_snapshot(),
            tuple((e.unit_index, e.generation, e.status, e.resource_id, e.attempts) for e in rows),
        )

    def _hold_snapshot(self) -> tuple[Any, ...]:
        tenant = self.store.get_tenant(self.tenant)
        ops = self.store.operations(self.tenant)
        return (
            (tenant.status, tenant.held, tenant.attempt, tenant.version) if tenant else None,
            tuple((op.attempt, op.status, op.error_code, op.finished_at, op.try_token) for op in ops),
        )

    def _result(self, process: Process) -> str:
        if process.result is None:
            return "running"
        kind, value = process.result
        detail = value.error.code.value if isinstance(value, ComputeOperationError) else type(value).__name__
        return f"{kind}({detail})"

    def _note(self, line: str) -> None:
        self.trace.append(line)

    def _violation(self, name: str, detail: str) -> None:
        TALLY.violations += 1
        raise Violation(f"{name}: {detail}\n" + "\n".join(self.trace))

    def teardown(self) -> None:
        for process in self.processes:
            if process.alive:
                with contextlib.suppress(Crash):
                    process.kill()
        MemoryCloud.registry.pop(self.cloud.name, None)
        _empty(self.store)


def _allowed_tenant_statuses(op: Any) -> set[TenantStatus]:
    """Where the transition table lets a tenant be after ``op``, its newest operation: held by it
    while it runs; then where its finish put it, and wherever release and the reconciler's
    finish may move it from there (never a begin: that would be a newer operation)."""
    if op.status.value == "abandoned":
        start = {TenantStatus.READY}
    elif op.finished_at is None:
        return {TenantStatus.OPERATION_IN_PROGRESS}
    else:
        target, _held = finish_target(
            op.error if op.status.value != "succeeded" else None, bool(op.will_retry)
        )
        start = {target}
    reachable = set(start)
    frontier = list(start)
    while frontier:
        status = frontier.pop()
        for (source, event), targets in TENANT_TRANSITIONS.items():
            if source is status and event is not TenantEvent.BEGIN:
                for target in targets - reachable:
                    reachable.add(target)
                    frontier.append(target)
    return reachable
