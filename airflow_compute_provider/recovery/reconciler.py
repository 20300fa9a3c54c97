"""``Reconciler``: one maintenance run over the tenant state store, in two passes.

    1. stale holds     tenants held by a try that shows no sign of life for ``stale_after``:
                       its units are described; once every one ended, the try is finished as
                       it would have been (no retry), the tenant released, or held for
                       investigation when the error that ends it needs a human, with a note in
                       its history. A hold whose units still run is flagged, never broken.
    2. executions      every execution with a finished try awaiting its eventual outcome, or
                       with ledger rows not yet over (launched, running, stopping, pending
                       cleanup), unless it holds its tenant (a live try owns its rows):
         look up       first, launches whose fate the ledger does not know (intents, refusals:
                       ``outcomes.unresolved_launch``) are looked for with one ``find`` per
                       execution; a unit found is recorded with its resource id and followed or
                       handed to cleanup as the operation's outcome says
                       (``outcomes.found_launch_move``). Pass 1 looks up a stale hold's rows the
                       same way before it decides anything
         observe       one describe per backend group (``backends.py``); rows move forward
         clean up      ``pending_cleanup`` rows (and ``stopping`` ones whose unit runs on) go
                       to ``Cleaner``: verified, stopped with retries, ledgered
         record        each awaiting try gets its eventual outcome; its tenant follows when it
                       still stands where that try left it and no try is coming
                       (``outcomes.tenant_after_eventual``): ``ready`` after a success,
                       ``needs_investigation`` after a non-retriable or manual failure (recorded
                       with the tenant's move, in one write)

Every tenant move is decided on the tenant as read before the provider was asked, and written
only while the tenant is still at that version: a new try that took it meanwhile wins.

Decisions live in ``outcomes.py`` and ``cleanup.py``; this module reads, asks and writes. It
never imports Airflow's task context: the operator (``operators/cleanup.py``) and any other
caller hand it a store, and it returns a ``RecoveryReport``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

import structlog

from airflow_compute_provider.errors import ComputeError, ComputeOperationError
from airflow_compute_provider.hooks.base import ExecutionRef, UnitStatus
from airflow_compute_provider.observability import LOGGER_NAME
from airflow_compute_provider.recovery import outcomes
from airflow_compute_provider.recovery.backends import (
    BackendCache,
    BackendFactory,
    build_backend,
    group_by_backend,
    unit_of,
)
from airflow_compute_provider.recovery.cleanup import Candidate, Cleaner, CleanupResult, Verdict
from airflow_compute_provider.recovery.report import Action, Item, RecoveryReport
from airflow_compute_provider.recovery.settings import RecoverySettings
from airflow_compute_provider.state.models import LedgerEntry, Operation, ResourceUpdate, Tenant
from airflow_compute_provider.state.status import IllegalTransitionError, ResourceStatus, TenantStatus
from airflow_compute_provider.state.store import TenantStateStore

R = ResourceStatus
NOTE_PREFIX = "compute maintenance: "
#: the ledger statuses whose rows a run looks at (their unit may not be over)
_OPEN = (R.LAUNCHED, R.RUNNING, R.STOPPING, R.PENDING_CLEANUP)

Execution = tuple[str, str]
_WORRYING = frozenset(
    {Action.REFUSED, Action.CLEANUP_FAILED, Action.UNOBSERVABLE, Action.TENANT_FLAGGED, Action.TENANT_HELD}
)


class Reconciler:
    """Follows timed-out work, cleanup and stale holds to the end.

    :param store: the tenant state store.
    :param backend_factory: builds the backend of a ledger row's (provider, connection,
        locator); by default the provider hooks.
    :param clock: now, as an aware UTC datetime; by default the store's clock (the database's),
        the one heartbeats are stamped with.
    :param sleep: how backoffs wait.
    """

    def __init__(
        self,
        store: TenantStateStore,
        *,
        backend_factory: BackendFactory = build_backend,
        clock: Callable[[], datetime] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._store = store
        self._factory = backend_factory
        self._clock = clock or store.now
        self._sleep = sleep

    def run(self, settings: RecoverySettings) -> RecoveryReport:
        return _Run(self._store, settings, BackendCache(self._factory), self._clock(), self._sleep).execute()


class _Run:
    """The state of one run: what was seen, what was decided, the report."""

    def __init__(
        self,
        store: TenantStateStore,
        settings: RecoverySettings,
        backends: BackendCache,
        now: datetime,
        sleep: Callable[[float], None],
    ) -> None:
        self.store = store
        self.settings = settings
        self.backends = backends
        self.now = now
        self.cleaner = Cleaner(settings, sleep)
        self.report = RecoveryReport(scope=settings.scope())
        self.dry = settings.dry_run
        #: executions whose hold this run ended (or, in a dry run, would end)
        self.freed: set[Execution] = set()
        #: pass 2's tenants, read before the provider is asked (what its decisions rest on)
        self.tenants: dict[str, Tenant | None] = {}
        self.log = structlog.get_logger(LOGGER_NAME).bind(component="recovery", dry_run=self.dry)

    def execute(self) -> RecoveryReport:
        self._stale_holds()
        self._executions()
        self._conclude()
        return self.report

    # -- pass 1: stale holds --------------------------------------------------------------------

    def _stale_holds(self) -> None:
        held = [t for t in self._tenants() if t.held and t.execution_id is not None]
        candidates: list[tuple[Tenant, Operation, list[LedgerEntry], timedelta]] = []
        for tenant in held:
            op = self._operation(tenant.tenant_id, str(tenant.execution_id), tenant.attempt)
            if op is None or not self.settings.covers(tenant.tenant_id, op.provider):
                continue
            entries = self.store.ledger(tenant.tenant_id, op.execution_id)
            # Cheap test first: a try active recently needs no provider call.
            idle = self.now - outcomes.last_activity(op, entries)
            if idle < self.settings.stale_after:
                continue
            candidates.append((tenant, op, self._look_up_launches(op, entries), idle))
        statuses, unobservable = self._observe(e for _, _, entries, _ in candidates for e in entries)
        for tenant, op, entries, idle in candidates:
            blind = [e for e in entries if e.id in unobservable]
            if blind:
                self._item_tenant(
                    tenant,
                    Action.TENANT_UNCHANGED,
                    f"its units could not be observed: {unobservable[blind[0].id].message}",
                )
                continue
            moved = self._move_rows(op.tenant_id, op.execution_id, entries, statuses)
            decision = outcomes.stale_hold(
                tenant, op, moved, idle=idle, stale_after=self.settings.stale_after
            )
            self._act_on_stale(tenant, op, decision)

    def _act_on_stale(self, tenant: Tenant, op: Operation, decision: outcomes.StaleDecision) -> None:
        if decision.action == "wait":
            return
        if decision.action == "flag":
            self.report.flag(tenant.tenant_id, decision.reason)
            self._item_tenant(tenant, Action.TENANT_FLAGGED, decision.reason, result=tenant.status.value)
            return
        note = NOTE_PREFIX + decision.reason
        if decision.action == "investigate":
            assert decision.outcome is not None
            if self._hold(tenant, op, decision.outcome, decision.reason):
                self.freed.add((op.tenant_id, op.execution_id))
            return
        try:
            if self.dry:
                result = "ready" if decision.action == "release" else "finished"
            elif decision.action == "finish":
                # Names the try it judged stale: one that took over meanwhile is not finished.
                moved = self.store.finish_operation(
                    op.tenant_id,
                    op.execution_id,
                    decision.outcome,
                    will_retry=False,
                    note=note,
                    by=op.ref if op.try_token else None,
                )
                result = moved.status.value
            else:
                moved = self.store.release(
                    tenant.tenant_id, note, force=True, expected_version=tenant.version
                )
                result = moved.status.value
        except IllegalTransitionError as exc:
            self._item_tenant(tenant, Action.TENANT_UNCHANGED, f"moved on meanwhile: {exc}")
            return
        self.freed.add((op.tenant_id, op.execution_id))
        if result == TenantStatus.NEEDS_INVESTIGATION.value:
            self.report.flag(tenant.tenant_id, decision.reason)
        self._item_tenant(
            tenant, Action.TENANT_RELEASED, decision.reason, result=result, error=decision.outcome
        )

    # -- pass 2: executions ---------------------------------------------------------------------

    def _executions(self) -> None:
        settings = self.settings
        self._look_up_unresolved()
        awaiting = [
            op
            for op in self.store.list_operations(tenant_id=settings.tenant_id, awaiting_eventual_outcome=True)
            if settings.covers(op.tenant_id, op.provider)
        ]
        open_rows = [
            e
            for status in _OPEN
            for e in self.store.list_resources(tenant_id=settings.tenant_id, status=status)
            if settings.covers(e.tenant_id, e.provider)
        ]
        executions = _unique(
            [(op.tenant_id, op.execution_id) for op in awaiting] + [_ex(e) for e in open_rows]
        )
        ledgers: dict[Execution, list[LedgerEntry]] = {}
        for execution in executions:
            if self._holds_its_tenant(execution):
                for op in awaiting:
                    if (op.tenant_id, op.execution_id) == execution:
                        self._item_op(
                            op, Action.EXECUTION_ACTIVE, "its execution holds the tenant (a try is live)"
                        )
                continue
            ledgers[execution] = self.store.ledger(*execution)

        statuses, unobservable = self._observe(e for entries in ledgers.values() for e in entries)
        candidates: list[Candidate] = []
        for execution, entries in ledgers.items():
            blind = {e.id for e in entries if e.id in unobservable}
            moved = self._move_rows(*execution, [e for e in entries if e.id not in blind], statuses)
            moved += [e for e in entries if e.id in blind]
            ledgers[execution] = moved
            for entry in moved:
                if entry.id in blind:
                    if entry.status is R.PENDING_CLEANUP:
                        why = unobservable[entry.id]
                        self._item_row(
                            entry, Action.UNOBSERVABLE, f"could not be observed: {why.message}", why
                        )
                    continue
                if entry.status is R.PENDING_CLEANUP or (
                    entry.status is R.STOPPING and not _over(statuses.get(entry.id))
                ):
                    candidates.append(Candidate(entry, statuses.get(entry.id)))
        self._clean(candidates, ledgers)

        for op in awaiting:
            execution = (op.tenant_id, op.execution_id)
            if execution in ledgers:
                unseen = [e for e in outcomes.newest(ledgers[execution]) if e.id in unobservable]
                self._settle(
                    op, ledgers[execution], blind_error=unobservable[unseen[0].id] if unseen else None
                )

    def _look_up_unresolved(self) -> None:
        """Every launch whose fate the ledger does not know, of an execution no live try owns,
        is looked up before this pass reads the open rows (so what it finds is followed or
        cleaned up by this same run)."""
        settings = self.settings
        unresolved = [
            e
            for status in (R.INTENDED, R.FAILED)
            for e in self.store.list_resources(tenant_id=settings.tenant_id, status=status)
            if settings.covers(e.tenant_id, e.provider) and outcomes.unresolved_launch(e)
        ]
        by_execution: dict[Execution, list[LedgerEntry]] = {}
        for entry in unresolved:
            by_execution.setdefault(_ex(entry), []).append(entry)
        for execution, entries in by_execution.items():
            if self._holds_its_tenant(execution):
                continue
            ops = [
                op
                for op in self.store.list_operations(tenant_id=execution[0])
                if op.execution_id == execution[1]
            ]
            newest_op = max(ops, key=lambda op: op.attempt, default=None)
            self._look_up_launches(newest_op, entries)

    def _look_up_launches(self, op: Operation | None, entries: list[LedgerEntry]) -> list[LedgerEntry]:
        """Look the ``unresolved_launch`` rows of one execution up on the provider (one ``find``
        per backend) and record what became of them; returns ``entries`` as they now read."""
        pending = [e for e in entries if outcomes.unresolved_launch(e)]
        moved: dict[int, LedgerEntry] = {}
        for key, group in group_by_backend(pending, lambda e: e).items():
            tenant_id, execution_id = _ex(group[0])
            try:
                found = {
                    (u.index, u.generation): u
                    for u in self.backends.get(key).find(ExecutionRef(tenant_id, execution_id))
                }
            except ComputeOperationError as exc:
                for e in group:
                    self._item_row(
                        e, Action.UNOBSERVABLE, f"could not be looked up: {exc.error.message}", exc.error
                    )
                continue
            updates = [
                outcomes.found_launch_move(e, found.get((e.unit_index, e.generation)), op) for e in group
            ]
            for entry in self._write_rows(tenant_id, execution_id, updates, group):
                moved[entry.id] = entry
                if entry.resource_id:
                    self._item_row(
                        entry, Action.FOUND, f"found on the provider; {entry.status.value}", entry.last_error
                    )
                else:
                    self._item_row(entry, Action.NOT_LAUNCHED, "looked up: the provider has no unit for it")
        return [moved.get(e.id, e) for e in entries]

    def _holds_its_tenant(self, execution: Execution) -> bool:
        tenant = self._tenant(execution[0])
        if execution in self.freed:
            return False
        return tenant is not None and tenant.held and tenant.execution_id == execution[1]

    def _tenant(self, tenant_id: str) -> Tenant | None:
        """The tenant as this pass first read it (then as this run moved it)."""
        if tenant_id not in self.tenants:
            self.tenants[tenant_id] = self.store.get_tenant(tenant_id)
        return self.tenants[tenant_id]

    def _clean(self, candidates: list[Candidate], ledgers: dict[Execution, list[LedgerEntry]]) -> None:
        for key, group in group_by_backend(candidates, lambda c: c.entry).items():
            try:
                backend = self.backends.get(key)
            except ComputeOperationError as exc:
                for c in group:
                    self._item_row(
                        c.entry, Action.UNOBSERVABLE, f"no backend for {key.describe()}", exc.error
                    )
                continue
            for result in self.cleaner.clean(backend, group):
                entry = self._record_cleanup(result)
                rows = ledgers[_ex(entry)]
                ledgers[_ex(entry)] = [entry if e.id == entry.id else e for e in rows]

    def _record_cleanup(self, result: CleanupResult) -> LedgerEntry:
        entry = result.entry
        done = result.verdict in (Verdict.GONE, Verdict.STOPPED, Verdict.WOULD_STOP)
        if done:
            target = R.STOPPED if entry.status is R.STOPPING else R.CLEANED
            action = Action.STOPPED if target is R.STOPPED else Action.CLEANED
        else:
            target = R.PENDING_CLEANUP
            action = Action.REFUSED if result.verdict is Verdict.REFUSED else Action.CLEANUP_FAILED
            why = (
                "refused: it does not carry this ledger row's tenant and execution"
                if result.verdict is Verdict.REFUSED
                else f"stop failed: {result.error.code.value if result.error else 'unknown'}"
            )
            self.report.flag(entry.tenant_id, f"resource {result.resource_id} stays pending_cleanup ({why})")
        update = ResourceUpdate(
            entry.unit_index, entry.generation, target, resource_id=result.resource_id, error=result.error
        )
        recorded = self._write_rows(entry.tenant_id, entry.execution_id, [update], [entry])[0]
        detail = result.detail or f"{result.verdict.value} after {result.attempts} attempt(s)"
        self._item_row(recorded, action, detail, result.error, resource_id=result.resource_id)
        return recorded

    def _settle(
        self, op: Operation, entries: Sequence[LedgerEntry], *, blind_error: ComputeError | None
    ) -> None:
        if blind_error is not None:
            why = f"its units could not be observed: {blind_error.message}"
            self._item_op(op, Action.STILL_RUNNING, why, blind_error)
            return
        eventual = outcomes.eventual_outcome(entries)
        if eventual is outcomes.UNSETTLED:
            self._item_op(op, Action.STILL_RUNNING, "a unit is still running")
            return
        assert not isinstance(eventual, outcomes.Unsettled)
        result = "succeeded" if eventual is None else "failed"
        tenant = self._tenant(op.tenant_id)
        decision = outcomes.tenant_after_eventual(tenant, op, eventual)
        moved_on: IllegalTransitionError | None = None
        if decision.action == "investigate" and tenant is not None and eventual is not None:
            # One write records the outcome and holds the tenant, so a crash in between cannot
            # leave the outcome recorded and the tenant waiting for a try that is not coming.
            held = self._write_hold(tenant, op, eventual, decision.reason)
            if not isinstance(held, IllegalTransitionError):
                self._item_op(op, Action.OUTCOME_RECORDED, f"eventually {result}", eventual, result=result)
                self._report_hold(held, eventual, decision.reason)
                return
            moved_on = held  # a new try took the tenant meanwhile; the outcome is still this try's
        if not self.dry:
            try:
                self.store.record_eventual_outcome(op.tenant_id, op.execution_id, op.attempt, eventual)
            except IllegalTransitionError as exc:
                self._item_op(op, Action.TENANT_UNCHANGED, f"not recorded: {exc}")
                return
        self._item_op(op, Action.OUTCOME_RECORDED, f"eventually {result}", eventual, result=result)
        if moved_on is not None and tenant is not None:
            self._item_tenant(tenant, Action.TENANT_UNCHANGED, f"moved on meanwhile: {moved_on}")
        elif decision.action == "ready" and tenant is not None:
            self._release_to_ready(tenant, op, decision.reason)

    def _release_to_ready(self, tenant: Tenant, op: Operation, reason: str) -> None:
        if not self.dry:
            try:
                tenant = self.store.release(
                    op.tenant_id, NOTE_PREFIX + reason, force=True, expected_version=tenant.version
                )
            except IllegalTransitionError as exc:
                self._item_tenant(tenant, Action.TENANT_UNCHANGED, f"moved on meanwhile: {exc}")
                return
            self.tenants[tenant.tenant_id] = tenant
        self._item_tenant(tenant, Action.TENANT_READY, reason, result=TenantStatus.READY.value)

    def _hold(self, tenant: Tenant, op: Operation, error: ComputeError, reason: str) -> bool:
        """Hold ``tenant`` for investigation and report it; ``False`` when it moved on meanwhile."""
        held = self._write_hold(tenant, op, error, reason)
        if isinstance(held, IllegalTransitionError):
            self._item_tenant(tenant, Action.TENANT_UNCHANGED, f"moved on meanwhile: {held}")
            return False
        self._report_hold(held, error, reason)
        return True

    def _write_hold(
        self, tenant: Tenant, op: Operation, error: ComputeError, reason: str
    ) -> Tenant | IllegalTransitionError:
        """``retry_pending`` -> ``needs_investigation`` on the version read, ``error`` recorded
        as the try's last; the store's refusal when the tenant moved on meanwhile."""
        if self.dry:
            return tenant
        try:
            held = self.store.hold_for_investigation(
                op.tenant_id,
                op.execution_id,
                op.attempt,
                error,
                NOTE_PREFIX + reason,
                expected_version=tenant.version,
            )
        except IllegalTransitionError as exc:
            return exc
        self.tenants[held.tenant_id] = held
        return held

    def _report_hold(self, tenant: Tenant, error: ComputeError, reason: str) -> None:
        self.report.flag(tenant.tenant_id, reason)
        self._item_tenant(
            tenant, Action.TENANT_HELD, reason, result=TenantStatus.NEEDS_INVESTIGATION.value, error=error
        )

    # -- observing and writing -----------------------------------------------------------------

    def _observe(
        self, entries: Iterable[LedgerEntry]
    ) -> tuple[dict[int, UnitStatus], dict[int, ComputeError]]:
        """Describe every observable row, one call per backend group: statuses by row id, and
        why a row could not be observed."""
        statuses: dict[int, UnitStatus] = {}
        unobservable: dict[int, ComputeError] = {}
        rows = [e for e in entries if outcomes.observable(e)]
        for key, group in group_by_backend(rows, lambda e: e).items():
            try:
                described = self.backends.get(key).describe([unit_of(e) for e in group])
            except ComputeOperationError as exc:
                self.log.warning("describe failed", backend=key.describe(), code=exc.error.code.value)
                unobservable.update({e.id: exc.error for e in group})
                continue
            by_unit = {(s.unit.index, s.unit.generation, s.unit.resource_id): s for s in described}
            for e in group:
                status = by_unit.get((e.unit_index, e.generation, str(e.resource_id)))
                if status is not None:
                    statuses[e.id] = status
        return statuses, unobservable

    def _move_rows(
        self, tenant_id: str, execution_id: str, entries: list[LedgerEntry], statuses: dict[int, UnitStatus]
    ) -> list[LedgerEntry]:
        """Move rows forward to what the provider said; returns the rows as they now read."""
        moves: list[tuple[LedgerEntry, ResourceUpdate]] = []
        for entry in entries:
            status = statuses.get(entry.id)
            if status is None:
                continue
            move = outcomes.ledger_move(
                entry, status, now=self.now, stuck_grace_period=self.settings.stuck_grace_period
            )
            if move is not None:
                moves.append((entry, move))
        if not moves:
            return list(entries)
        written = self._write_rows(tenant_id, execution_id, [m for _, m in moves], [e for e, _ in moves])
        by_id = {e.id: e for e in written}
        for entry in written:
            failed = entry.status in (R.FAILED, R.PENDING_CLEANUP)
            self._item_row(
                entry,
                Action.OBSERVED,
                f"the provider says {statuses[entry.id].phase.value}",
                entry.last_error if failed else None,
            )
        return [by_id.get(e.id, e) for e in entries]

    def _write_rows(
        self, tenant_id: str, execution_id: str, updates: list[ResourceUpdate], entries: list[LedgerEntry]
    ) -> list[LedgerEntry]:
        if self.dry:
            return [outcomes.apply_move(e, u) for e, u in zip(entries, updates, strict=True)]
        written = self.store.record_resources(tenant_id, execution_id, updates)
        by_key = {(e.unit_index, e.generation): e for e in written}
        return [by_key.get((e.unit_index, e.generation), e) for e in entries]

    # -- reading ---------------------------------------------------------------------------------

    def _tenants(self) -> list[Tenant]:
        if self.settings.tenant_id is not None:
            tenant = self.store.get_tenant(self.settings.tenant_id)
            return [tenant] if tenant is not None else []
        return self.store.list_tenants()

    def _operation(self, tenant_id: str, execution_id: str, attempt: int | None) -> Operation | None:
        for op in self.store.list_operations(tenant_id=tenant_id):
            if op.execution_id == execution_id and (attempt is None or op.attempt == attempt):
                return op
        return None

    # -- the report ------------------------------------------------------------------------------

    def _conclude(self) -> None:
        settings = self.settings
        pending = [
            e
            for e in self.store.list_resources(tenant_id=settings.tenant_id, status=R.PENDING_CLEANUP)
            if settings.covers(e.tenant_id, e.provider)
        ]
        would_clean = self.report.count(Action.CLEANED) if self.dry else 0
        self.report.pending_after = max(0, len(pending) - would_clean)
        for tenant in self._tenants():
            if tenant.status is not TenantStatus.NEEDS_INVESTIGATION:
                continue
            op = self._operation(tenant.tenant_id, tenant.execution_id or "", tenant.attempt)
            if op is None or settings.covers(tenant.tenant_id, op.provider):
                # A tenant an earlier run held is there for what its try's work became.
                error = (op.eventual_error or op.error) if op is not None else None
                code = error.code.value if error is not None else "unknown"
                self.report.flag(tenant.tenant_id, f"needs_investigation after {code}")
        self.log.info("maintenance run done", **self.report.summary())

    def _item_op(
        self,
        op: Operation,
        action: Action,
        detail: str,
        error: ComputeError | None = None,
        *,
        result: str | None = None,
    ) -> None:
        self._add(
            Item(
                kind="operation",
                action=action,
                tenant_id=op.tenant_id,
                execution_id=op.execution_id,
                attempt=op.attempt,
                result=result,
                detail=detail,
                error=error,
                applied=not self.dry,
            )
        )

    def _item_row(
        self,
        entry: LedgerEntry,
        action: Action,
        detail: str,
        error: ComputeError | None = None,
        *,
        resource_id: str | None = None,
    ) -> None:
        self._add(
            Item(
                kind="resource",
                action=action,
                tenant_id=entry.tenant_id,
                execution_id=entry.execution_id,
                unit_index=entry.unit_index,
                generation=entry.generation,
                resource_id=resource_id or entry.resource_id,
                result=entry.status.value,
                detail=detail,
                error=error,
                applied=not self.dry,
            )
        )

    def _item_tenant(
        self,
        tenant: Tenant,
        action: Action,
        detail: str,
        *,
        result: str | None = None,
        error: ComputeError | None = None,
    ) -> None:
        self._add(
            Item(
                kind="tenant",
                action=action,
                tenant_id=tenant.tenant_id,
                execution_id=tenant.execution_id,
                attempt=tenant.attempt,
                result=result or tenant.status.value,
                detail=detail,
                error=error,
                applied=not self.dry,
            )
        )

    def _add(self, item: Item) -> None:
        self.report.add(item)
        fields = {k: v for k, v in item.to_json().items() if k not in ("kind", "action")}
        # What a human must look at is a warning; everything else is the run's normal business.
        level = "warning" if item.action in _WORRYING else "info"
        getattr(self.log, level)(f"{item.kind} {item.action.value}", **fields)


def _ex(entry: LedgerEntry) -> Execution:
    return (entry.tenant_id, entry.execution_id)


def _over(status: UnitStatus | None) -> bool:
    return status is not None and status.phase.terminal


def _unique(items: Sequence[Execution]) -> list[Execution]:
    return list(dict.fromkeys(items))


__all__ = ["NOTE_PREFIX", "Reconciler"]
