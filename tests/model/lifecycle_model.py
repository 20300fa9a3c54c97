"""The lifecycle model: Airflow's real ways of running a compute task, against the invariants.

A hypothesis ``RuleBasedStateMachine`` drives ``MemoryComputeOperator`` (the real
``BaseComputeOperator`` lifecycle on the in-memory provider) and the real ``SqlTenantStateStore``
(SQLite) the way Airflow can: tries with growing attempt numbers (a retry or a clear), a try run
twice, zombie tries that go on after a newer try began, crashes at every store or provider call,
``execution_timeout`` (blocking: raised at any call; deferred: the trigger's timeout), triggers
that fire, units that succeed, fail, get interrupted or vanish, refusals and lost answers, partial
launches under each ``on_partial_failure``, reconciler runs (with the holds stale or not) and an
operator's release. After every step it checks DESIGN's invariants (``check_invariants``).

Some invariants only hold once the rest of issue 16 lands. Each violation is counted against the
fix it waits for, and an example that went through the path that fix changes is *tainted* with
its name; a violation in a tainted example is *known* (counted, not failed) unless the
environment says the fix is in (``MODEL_EXPECTS``, comma-separated, or ``all``):

    try_tokens   a process that is no longer the newest one of the execution (a zombie, the
                 older of two runs of one try) wrote to the store, or ran at all (h-tries)
    clear_rule   a try began after an earlier try of the execution succeeded (a cleared task):
                 today any earlier success starts every unit fresh (h-tries)

Everything else is strict: a violation fails the test, and hypothesis shrinks it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from airflow_compute_provider.errors import ComputeError, ComputeOperationError, ErrorCode
from airflow_compute_provider.hooks.base import ExecutionRef, Unit, UnitPhase, UnitStatus
from airflow_compute_provider.recovery import Reconciler, RecoverySettings
from airflow_compute_provider.state import SqlTenantStateStore
from airflow_compute_provider.state.rules import finish_target
from airflow_compute_provider.state.status import TENANT_TRANSITIONS, TenantEvent, TenantStatus
from airflow_compute_provider.testing.memory import MemoryCloud, MemoryComputeBackend
from airflow_compute_provider.testing.operator import MemoryComputeOperator
from airflow_compute_provider.triggers.progress import Settlement, assess
from tests.model.harness import CLOCK, AirflowTaskTimeout, Crash, Gated, Process
from tests.model.support import factory

FIXES = ("try_tokens", "clear_rule")
EXPECTED = {f.strip() for f in os.environ.get("MODEL_EXPECTS", "").split(",") if f.strip()}
if "all" in EXPECTED:
    EXPECTED = set(FIXES)

EXECUTION_ID = "model:run:task:-1"


@dataclass
class Tally:
    """What every example of the run did (printed by ``tests/model/conftest.py``)."""

    examples: int = 0
    steps: int = 0
    violations: int = 0
    known: dict[str, int] = field(default_factory=dict)
    #: the first known violation of each kind, for the report: (invariant, steps of its example)
    first_known: dict[str, str] = field(default_factory=dict)
    ran: bool = False

    def line(self) -> str:
        known = ", ".join(f"{n} awaiting {fix}" for fix, n in sorted(self.known.items()))
        tail = f" (known: {known})" if known else ""
        counts = f"{self.examples} examples, {self.steps} steps, {self.violations} violations"
        return f"lifecycle model: {counts}{tail}"


TALLY = Tally()


class Violation(AssertionError):
    pass


_tenants = itertools.count(1)


class LifecycleModel(RuleBasedStateMachine):
    #: the SQLite store every example shares (each example is its own tenant); set by the test
    store_url: str = ""
    _store: SqlTenantStateStore | None = None

    def __init__(self) -> None:
        super().__init__()
        TALLY.examples += 1
        TALLY.ran = True
        if LifecycleModel._store is None:
            LifecycleModel._store = SqlTenantStateStore(self.store_url)
        self.store = LifecycleModel._store
        self.tenant = f"t{os.getpid()}-{next(_tenants)}"
        self.cloud = MemoryCloud(f"model-{self.tenant}")
        self.execution = ExecutionRef(self.tenant, EXECUTION_ID)
        self.processes: list[Process] = []
        self.pids = itertools.count(1)
        self.attempt = 0
        #: the process that began last: every other live one is a zombie
        self.newest: Process | None = None
        #: the newest try's trigger, while it is deferred: (attempt, trigger)
        self.trigger: tuple[int, Any] | None = None
        self.taint: set[str] = set()
        self.reported: set[str] = set()
        self.trace: list[str] = []
        self.config: dict[str, Any] = {}

    # -- set-up ------------------------------------------------------------------------------------

    @initialize(
        count=st.integers(1, 3),
        wait_for=st.sampled_from(["completion", "running"]),
        on_partial_failure=st.sampled_from(["rollback", "retry_failed"]),
    )
    def configure(self, count: int, wait_for: str, on_partial_failure: str) -> None:
        self.config = {"count": count, "wait_for": wait_for, "on_partial_failure": on_partial_failure}
        self._note(f"configure {self.config}")

    def _operator(self, deferrable: bool) -> Any:
        op = MemoryComputeOperator(
            task_id="model",
            tenant_id=self.tenant,
            operation="provision",
            execution_id=EXECUTION_ID,
            cloud=self.cloud.name,
            deferrable=deferrable,
            timeout=timedelta(seconds=60),
            poll_interval=20.0,
            pending_grace_period=timedelta(seconds=30),
            **self.config,
        )
        op.__dict__["_store"] = Gated(self.store, "store")
        cloud = self.cloud
        op.make_backend = lambda: Gated(MemoryComputeBackend(cloud), "backend")  # type: ignore[method-assign]
        return op

    # -- Airflow starts tries ------------------------------------------------------------------------

    def _start(self, attempt: int, body: Any, op: Any, will_retry: bool) -> Process:
        process = Process(next(self.pids), attempt, op, body, will_retry)
        self.processes.append(process)
        self.newest = process
        return process

    @rule(deferrable=st.booleans(), will_retry=st.booleans())
    def new_try(self, deferrable: bool, will_retry: bool) -> None:
        """Airflow starts the next try: a retry, a clear (after success or failure), or a try
        rescheduled while its previous process still runs (that one is now a zombie)."""
        if any(op_succeeded for op_succeeded in self._succeeded_attempts()):
            self.taint.add("clear_rule")
        self.attempt += 1
        self.trigger = None  # a new try cancels the old one's trigger
        op = self._operator(deferrable)
        self._start(self.attempt, op.execute, op, will_retry)
        self._note(f"new_try attempt={self.attempt} deferrable={deferrable} will_retry={will_retry}")

    @precondition(lambda self: self.attempt > 0)
    @rule(deferrable=st.booleans(), will_retry=st.booleans())
    def same_try_again(self, deferrable: bool, will_retry: bool) -> None:
        """A second process runs the newest try (Airflow's double run after a zombie)."""
        self.taint.add("try_tokens")
        op = self._operator(deferrable)
        self._start(self.attempt, op.execute, op, will_retry)
        self._note(f"same_try_again attempt={self.attempt}")

    # -- processes go on, crash, time out --------------------------------------------------------------

    def _alive(self) -> list[Process]:
        return [p for p in self.processes if p.alive]

    def _superseded(self, process: Process) -> bool:
        """A newer process's try began in the store: ``process`` is a zombie (or the older of
        two runs of one try), and none of its writes may count any more."""
        return any(q.began and q.pid > process.pid for q in self.processes)

    @precondition(lambda self: any(p.alive for p in self.processes))
    @rule(which=st.integers(0, 3), calls=st.integers(1, 6))
    def advance(self, which: int, calls: int) -> None:
        alive = self._alive()
        process = alive[which % len(alive)]
        zombie = self._superseded(process)
        before = self._snapshot() if zombie else None
        for _ in range(calls):
            if not process.alive:
                break
            process.step()
        self._note(
            f"advance p{process.pid} (attempt {process.attempt}) {calls} calls -> "
            f"{process.at} {self._result(process)}"
        )
        if zombie:
            self.taint.add("try_tokens")
            if self._snapshot() != before:
                self._violation(
                    "a_zombie_wrote", "try_tokens", f"p{process.pid} changed the store at {process.at}"
                )
        self._after(process)

    @precondition(lambda self: any(p.alive for p in self.processes))
    @rule(which=st.integers(0, 3))
    def run_to_end(self, which: int) -> None:
        alive = self._alive()
        process = alive[which % len(alive)]
        zombie = self._superseded(process)
        before = self._snapshot() if zombie else None
        for _ in range(500):
            if not process.alive:
                break
            process.step()
        self._note(f"run_to_end p{process.pid} -> {self._result(process)}")
        if zombie:
            self.taint.add("try_tokens")
            if self._snapshot() != before:
                self._violation("a_zombie_wrote", "try_tokens", f"p{process.pid} changed the store")
        self._after(process)

    @precondition(lambda self: any(p.alive for p in self.processes))
    @rule(which=st.integers(0, 3))
    def crash(self, which: int) -> None:
        alive = self._alive()
        process = alive[which % len(alive)]
        process.kill()
        self._note(f"crash p{process.pid} at {process.at}")

    @precondition(lambda self: any(p.alive and p.in_execute and p.at != "start" for p in self.processes))
    @rule(which=st.integers(0, 3))
    def execution_timeout(self, which: int) -> None:
        """Airflow's execution_timeout fires in a blocking try (a signal: at any call)."""
        alive = [p for p in self._alive() if p.in_execute and p.at != "start"]
        process = alive[which % len(alive)]
        zombie = self._superseded(process)
        before = self._snapshot() if zombie else None
        process.throw(AirflowTaskTimeout("execution_timeout"))
        self._note(f"execution_timeout p{process.pid} -> {self._result(process)}")
        if zombie and self._snapshot() != before:
            self._violation("a_zombie_wrote", "try_tokens", f"p{process.pid} changed the store")
        self._after(process)

    def _after(self, process: Process) -> None:
        if process.result is None:
            return
        kind, value = process.result
        if kind == "deferred" and process is self.newest:
            self.trigger = (process.attempt, value)
        if kind == "succeeded" and process is self.newest:
            self._check_success(value)

    # -- the triggerer ---------------------------------------------------------------------------------

    @precondition(lambda self: self.trigger is not None and self.newest is not None and not self.newest.alive)
    @rule(kind=st.sampled_from(["settled", "timeout"]), will_retry=st.booleans())
    def trigger_fires(self, kind: str, will_retry: bool) -> None:
        """The trigger yields its one event, and Airflow resumes the try in a new process.
        ``timeout``: the try's deadline (the operation's timeout, or its execution_timeout
        once deferred tries honour it) passed first."""
        assert self.trigger is not None
        attempt, trigger = self.trigger
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
        self.trigger = None
        op = self._operator(True)
        resumed = self._start(attempt, lambda context: op.execute_complete(context, event), op, will_retry)
        resumed.began = True  # the same try, resumed
        self._note(f"trigger_fires {event['kind']} attempt={attempt}")

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
        else:
            cloud.fail_next_call(fault.removeprefix("fail_"), skip=skip)
        self._note(f"provider_fault {fault} skip={skip}")

    # -- maintenance -----------------------------------------------------------------------------------

    @rule(stale=st.booleans())
    def reconciler_runs(self, stale: bool) -> None:
        """A maintenance run (the reconcile / cleanup operator); ``stale``: long after the last
        sign of life of every try, so held tenants count as stale. The provider answers well."""
        self.cloud.clear_faults()
        now = datetime.now(UTC) + (timedelta(hours=3) if stale else timedelta(0))
        Reconciler(
            self.store, backend_factory=factory(self.cloud), clock=lambda: now, sleep=lambda _s: None
        ).run(RecoverySettings(tenant_id=self.tenant))
        self._note(f"reconciler_runs stale={stale}")
        no_try_left = not any(p.alive for p in self.processes) and self.trigger is None
        if stale and no_try_left:
            self._check_every_live_unit_is_known()

    @precondition(lambda self: self.attempt > 0)
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
            self._violation("two_live_generations", None, f"unit index -> live generations {doubled}")

    @invariant()
    def tenant_is_where_the_newest_try_left_it(self) -> None:
        ops = [op for op in self.store.operations(self.tenant) if op.execution_id == EXECUTION_ID]
        tenant = self.store.get_tenant(self.tenant)
        if not ops or tenant is None:
            return
        newest = max(ops, key=lambda op: op.attempt)
        allowed = _allowed_tenant_statuses(newest)
        if tenant.status not in allowed:
            self._violation(
                "tenant_status",
                None,
                f"tenant {tenant.status.value} after try {newest.attempt} ({newest.status.value}, "
                f"error {newest.error_code}, will_retry {newest.will_retry}); "
                f"allowed {sorted(s.value for s in allowed)}",
            )
        if tenant.held and tenant.attempt != newest.attempt:
            self._violation(
                "tenant_held_by_an_older_try", None, f"held by {tenant.attempt}, newest {newest.attempt}"
            )

    def _check_every_live_unit_is_known(self) -> None:
        rows = {
            (e.unit_index, e.generation): e.resource_id for e in self.store.ledger(self.tenant, EXECUTION_ID)
        }
        unknown = [
            f"{u.index}g{u.generation} ({u.resource_id})"
            for u in self.cloud.of_execution(self.execution)
            if u.live and rows.get((u.index, u.generation)) != u.resource_id
        ]
        if unknown:
            self._violation(
                "live_unit_unknown_to_the_ledger", None, f"after a stale reconciler run: {unknown}"
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
            self._violation("success_with_units_not_done", None, "; ".join(bad))

    # -- helpers ---------------------------------------------------------------------------------------

    def _all_units(self) -> list[Any]:
        return list(self.cloud.units.values()) + list(self.cloud.gone.values())

    def _succeeded_attempts(self) -> list[bool]:
        return [
            op.status.value == "succeeded" and op.finished_at is not None
            for op in self.store.operations(self.tenant)
            if op.execution_id == EXECUTION_ID
        ]

    def _snapshot(self) -> tuple[Any, ...]:
        tenant = self.store.get_tenant(self.tenant)
        ops = self.store.operations(self.tenant)
        rows = self.store.ledger(self.tenant, EXECUTION_ID)
        return (
            (tenant.status, tenant.held, tenant.attempt, tenant.version) if tenant else None,
            tuple((op.attempt, op.status, op.error_code, op.finished_at) for op in ops),
            tuple((e.unit_index, e.generation, e.status, e.resource_id, e.attempts) for e in rows),
        )

    def _result(self, process: Process) -> str:
        if process.result is None:
            return "running"
        kind, value = process.result
        detail = value.error.code.value if isinstance(value, ComputeOperationError) else type(value).__name__
        return f"{kind}({detail})"

    def _note(self, line: str) -> None:
        self.trace.append(line)

    def _violation(self, name: str, fix: str | None, detail: str) -> None:
        """Count it; fail unless a fix it waits for has not landed and this example is tainted."""
        waiting = [f for f in FIXES if f in self.taint and f not in EXPECTED]
        if fix is not None and fix not in EXPECTED:
            waiting = [fix]
        if waiting and name not in self.reported:
            self.reported.add(name)
            key = f"{name} (awaiting {'/'.join(waiting)})"
            TALLY.known[waiting[0]] = TALLY.known.get(waiting[0], 0) + 1
            TALLY.first_known.setdefault(key, "\n".join(self.trace) + f"\n=> {detail}")
            return
        if waiting:
            return
        TALLY.violations += 1
        raise Violation(f"{name}: {detail}\n" + "\n".join(self.trace))

    def teardown(self) -> None:
        for process in self.processes:
            if process.alive:
                with contextlib.suppress(Crash):
                    process.kill()
        MemoryCloud.registry.pop(self.cloud.name, None)


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
