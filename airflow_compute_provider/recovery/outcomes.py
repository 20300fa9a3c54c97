"""The reconciler's decisions, as pure functions of ledger rows, unit statuses and store records.

    unresolved_launch(entry)       whether a row is a launch whose fate the ledger does not know: an
                                   intent (the try died after writing it, or its answer was lost
                                   and the try's own look missed the unit) or a refusal (whose
                                   request may have landed all the same); the reconciler looks
                                   these up on the provider before it concludes anything
    found_launch_move(entry, ...)  what such a row becomes once looked up: the unit it found is
                                   recorded with its resource id, and followed (``launched``) when
                                   the operation's try left its work running or never finished,
                                   else handed to cleanup (``pending_cleanup``); nothing found is
                                   ``failed`` (an intent, never launched) or ``cleaned`` (a refusal)
    ledger_move(entry, status)     the forward move a row takes from what the provider says now:
                                   launched/running -> running, succeeded, failed (vanished counts
                                   as failed, with the same error the lifecycle would give it);
                                   stuck pending past the grace period -> pending_cleanup (the unit
                                   still exists and must be stopped); stopping -> stopped once over
    eventual_outcome(entries)      what became of an execution's work: ``Unsettled`` while a unit
                                   may still run, else ``None`` (every unit succeeded) or the
                                   operation's error, built as the lifecycle builds it
    tenant_after_eventual(...)     whether the tenant follows that outcome: only if the tenant still
                                   stands where the timed-out try left it and no try is coming
    stale_hold(...)                whether a held tenant's try is over for good, and where the
                                   tenant belongs then

Both tenant decisions apply the store's own finish rule (``state.rules.finish_target``, no retry)
to the error that ends the story: ``ready`` on success, ``retry_pending`` kept (or released) for
a retriable error, ``needs_investigation`` for a non-retriable or manual one. For a try that
timed out that error is what its work eventually became, not the timeout: the timeout only
meant the try stopped watching.

No I/O, no clock of their own: ``reconciler.py`` reads, calls these, and writes.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from airflow_compute_provider.errors import ComputeError, ErrorCode
from airflow_compute_provider.errors.model import RootCause
from airflow_compute_provider.hooks.base import Unit, UnitPhase, UnitStatus
from airflow_compute_provider.lifecycle import outcome as lifecycle_outcome
from airflow_compute_provider.recovery.backends import unit_of
from airflow_compute_provider.state.models import (
    NEVER_LAUNCHED,
    LedgerEntry,
    Operation,
    ResourceUpdate,
    Tenant,
)
from airflow_compute_provider.state.rules import finish_target
from airflow_compute_provider.state.status import OperationStatus, ResourceStatus, TenantStatus
from airflow_compute_provider.triggers.progress import unit_failure

R = ResourceStatus

#: the ledger says the unit may still be alive; only the provider can tell
ALIVE = frozenset({R.LAUNCHED, R.RUNNING})
#: rows the reconciler hands to cleanup (a stopping row only once the provider says it runs on)
TO_CLEAN = frozenset({R.PENDING_CLEANUP, R.STOPPING})
#: rows whose unit ended, as far as its outcome goes
_ENDED = frozenset({R.SUCCEEDED, R.FAILED, R.STOPPED, R.PENDING_CLEANUP, R.CLEANED, R.STOPPING})


class Unsettled(enum.Enum):
    """A unit of the execution may still run: no eventual outcome yet."""

    UNSETTLED = "unsettled"


UNSETTLED = Unsettled.UNSETTLED


def observable(entry: LedgerEntry) -> bool:
    """Whether a row is worth a describe: it has a resource, and its unit may not be over."""
    return bool(entry.resource_id) and (entry.status in ALIVE or entry.status in TO_CLEAN)


def unresolved_launch(entry: LedgerEntry) -> bool:
    """A launch with no resource id whose unit may exist all the same: an intent, or a refusal
    not yet looked up (an intent the reconciler found missing is a refusal it already checked)."""
    if entry.resource_id:
        return False
    if entry.status is R.INTENDED:
        return True
    return entry.status is R.FAILED and not entry.never_launched


def work_may_outlive(op: Operation | None) -> bool:
    """Whether the operation's try meant its units to run on after it: it never finished (its
    worker died, or it is abandoned), or it ended leaving them running (a timeout, a
    ``retry_failed`` partial failure)."""
    if op is None or op.finished_at is None or op.status is OperationStatus.ABANDONED:
        return True
    if op.status is OperationStatus.SUCCEEDED or op.error is None:
        return False
    left_running = op.error.cleanup is not None and op.error.cleanup.action == "left_running"
    return left_running or op.error.code is ErrorCode.OPERATION_TIMEOUT


def found_launch_move(entry: LedgerEntry, unit: Unit | None, op: Operation | None) -> ResourceUpdate:
    """What an ``unresolved_launch`` row becomes once the provider was asked (``unit``: what
    ``find`` returned for its unit index and generation; ``op``: the execution's newest try).

    A unit found is recorded with its resource id. An intent whose try left its work running
    (or never finished) is followed like any launched unit; otherwise the operation's outcome
    does not count it (the try failed without it, or succeeded with another), so it is handed to
    cleanup. A refusal the try already counted as failed cannot become launched again: its unit
    is always cleaned up. Nothing found: an intent never launched (failed), a refusal that
    started nothing (cleaned: looked up, nothing left), each with its error kept.
    """
    key = (entry.unit_index, entry.generation)
    if unit is None:
        if entry.status is R.INTENDED:
            return ResourceUpdate(
                *key,
                R.FAILED,
                error=_never_launched(
                    f"unit {entry.unit_index} generation {entry.generation} was intended, and the "
                    "provider has no unit for it"
                ),
            )
        return ResourceUpdate(*key, R.CLEANED)
    if entry.status is R.INTENDED and work_may_outlive(op):
        return ResourceUpdate(*key, R.LAUNCHED, resource_id=unit.resource_id)
    return ResourceUpdate(*key, R.PENDING_CLEANUP, resource_id=unit.resource_id)


def ledger_move(
    entry: LedgerEntry, status: UnitStatus, *, now: datetime, stuck_grace_period: timedelta
) -> ResourceUpdate | None:
    """The move ``entry`` takes given ``status``, or ``None`` when it stays as it is."""
    key = (entry.unit_index, entry.generation)
    if entry.status is R.STOPPING:
        if status.phase.terminal:
            return ResourceUpdate(*key, R.STOPPED, resource_id=status.unit.resource_id)
        return None
    if entry.status not in ALIVE:
        return None
    failure = unit_failure(status, now=now, pending_grace_period=stuck_grace_period)
    if status.phase is UnitPhase.SUCCEEDED:
        return ResourceUpdate(*key, R.SUCCEEDED, resource_id=status.unit.resource_id)
    if status.phase in (UnitPhase.FAILED, UnitPhase.VANISHED):
        return ResourceUpdate(*key, R.FAILED, resource_id=status.unit.resource_id, error=failure)
    if failure is not None:
        # Stuck pending past its grace period: failed, but it still exists; stop it.
        return ResourceUpdate(*key, R.PENDING_CLEANUP, resource_id=status.unit.resource_id, error=failure)
    if status.phase is UnitPhase.RUNNING and entry.status is R.LAUNCHED:
        return ResourceUpdate(*key, R.RUNNING, resource_id=status.unit.resource_id)
    return None


def apply_move(entry: LedgerEntry, move: ResourceUpdate | None) -> LedgerEntry:
    """``entry`` as it reads once ``move`` is recorded (what a dry run pretends)."""
    if move is None:
        return entry
    return replace(
        entry,
        status=R(move.status),
        resource_id=move.resource_id or entry.resource_id,
        last_error=move.error or entry.last_error,
    )


def newest(entries: Iterable[LedgerEntry]) -> list[LedgerEntry]:
    """The newest generation of every unit, by unit index."""
    by_index: dict[int, LedgerEntry] = {}
    for entry in entries:
        current = by_index.get(entry.unit_index)
        if current is None or entry.generation > current.generation:
            by_index[entry.unit_index] = entry
    return [by_index[i] for i in sorted(by_index)]


def eventual_outcome(entries: Sequence[LedgerEntry]) -> ComputeError | Unsettled | None:
    """What became of an execution's work, from its ledger rows (after this run's moves).

    Each unit counts by its newest generation: succeeded; failed (with its error); stopped or
    cleaned up by us (a failure, since its work did not finish); or not over yet. An intent
    whose launch was never recorded counts as never run.
    """
    units = newest(entries)
    if not units:
        return _never_launched("no unit of this execution was ever launched")
    if any(e.status in ALIVE for e in units):
        return UNSETTLED
    statuses: list[UnitStatus] = []
    failures: list[tuple[int, str | None, ComputeError]] = []
    for entry in units:
        if entry.status is R.SUCCEEDED and entry.resource_id:
            statuses.append(UnitStatus(unit=unit_of(entry), phase=UnitPhase.SUCCEEDED))
        else:
            failures.append((entry.unit_index, entry.resource_id, _why_not_succeeded(entry)))
    if not failures:
        return None
    report = lifecycle_outcome.units_report(statuses, failures)
    return lifecycle_outcome.failure_error(report, count=len(units))


def _why_not_succeeded(entry: LedgerEntry) -> ComputeError:
    if entry.last_error is not None:
        return entry.last_error
    if entry.status is R.INTENDED:
        return _never_launched(
            f"unit {entry.unit_index} generation {entry.generation} was intended but its launch was "
            "never recorded"
        )
    return ComputeError(
        code=ErrorCode.CANCELLED,
        message=(
            f"unit {entry.unit_index} ({entry.resource_id}) was stopped by the lifecycle "
            f"({entry.status.value}) before it finished"
        ),
        root_cause=RootCause(resource_id=entry.resource_id, reason=entry.status.value),
    )


def _never_launched(message: str) -> ComputeError:
    return ComputeError(
        code=ErrorCode.CANCELLED, message=message, root_cause=RootCause(reason=NEVER_LAUNCHED)
    )


@dataclass(frozen=True)
class TenantDecision:
    #: "ready" (release to ready), "investigate" (hold for investigation), "unchanged"
    action: str
    reason: str


def tenant_after_eventual(
    tenant: Tenant | None, op: Operation, outcome: ComputeError | None
) -> TenantDecision:
    """Where the tenant goes once a finished try's eventual outcome is known.

    Only a tenant that still stands where that try left it follows (``retry_pending``, same
    execution and attempt): a later operation's move is never overwritten. And only when no try
    is coming: a tenant still held for this execution waits for the retry Airflow scheduled,
    which reconciles the same units and finishes by the same rule. It then goes where the
    store's rule puts a try that ended with this outcome and no retry: ``ready`` on success; a
    retriable failure leaves it ``retry_pending`` (free, a later try may fix it); a
    non-retriable or manual failure holds it for investigation, that error its last.
    """
    if tenant is None:
        return TenantDecision("unchanged", "the tenant is not in the store")
    if tenant.held and tenant.execution_id == op.execution_id:
        return TenantDecision(
            "unchanged", f"held for a retry of {op.execution_id}: that try owns the outcome"
        )
    moved_on = (
        tenant.held
        or tenant.execution_id != op.execution_id
        or tenant.attempt != op.attempt
        or tenant.status is not TenantStatus.RETRY_PENDING
    )
    if moved_on:
        return TenantDecision(
            "unchanged",
            f"a later move left the tenant {tenant.status.value} (execution {tenant.execution_id!r}, "
            f"attempt {tenant.attempt})",
        )
    if outcome is not None and outcome.root_cause.reason == NEVER_LAUNCHED:
        # No work outlived the try: its own error stands, and it already placed the tenant.
        return TenantDecision("unchanged", "nothing of its work ever ran")
    target, _held = finish_target(outcome, will_retry=False)
    if target is TenantStatus.READY:
        return TenantDecision(
            "ready",
            f"try {op.attempt} of {op.execution_id} ended {_code(op)} but its work eventually succeeded",
        )
    assert outcome is not None  # only success leads to ready
    if target is TenantStatus.NEEDS_INVESTIGATION:
        return TenantDecision(
            "investigate",
            f"{_error_text(outcome)}: what the work of try {op.attempt} of {op.execution_id} ended "
            f"with, after that try itself ended {_code(op)}",
        )
    return TenantDecision("unchanged", f"the work eventually failed with {outcome.code.value} (retriable)")


def _error_text(error: ComputeError) -> str:
    # The code first: table cells (the state CLI) cut long notes short.
    return f"{error.code.value} ({error.classification.value})"


def _code(op: Operation) -> str:
    return op.error_code.value if op.error_code else op.status.value


def last_activity(op: Operation, entries: Iterable[LedgerEntry]) -> datetime:
    """The try's last sign of life, on the database's clock: its heartbeat (renewed by a blocking
    wait and by every write the try makes), or the deadline a deferred try is alive until, or
    when it finished. Never its start: a long wait that renews its heartbeat is not stale. A
    try recorded before heartbeats existed falls back to its timestamps and its ledger rows'.
    ``entries`` is only read for such a try: the reconciler's own ledger moves are no sign of
    the try's life."""
    if op.heartbeat_at is None:
        stamps = [op.started_at, op.outcome_at, op.finished_at, *(e.updated_at for e in entries)]
    else:
        stamps = [op.heartbeat_at, op.live_until, op.finished_at]
    return max(s for s in stamps if s is not None)


@dataclass(frozen=True)
class StaleDecision:
    #: "finish" (end the unfinished try through the store's finish), "release" (force-release to
    #: ready), "investigate" (hold for investigation), "flag" (its units still run: a human
    #: should look), "wait" (not stale)
    action: str
    outcome: ComputeError | None
    reason: str


def stale_hold(
    tenant: Tenant,
    op: Operation,
    entries: Sequence[LedgerEntry],
    *,
    idle: timedelta,
    stale_after: timedelta,
) -> StaleDecision:
    """Whether a held tenant is to be released, and how. ``idle`` is how long the try showed no
    sign of life before this run (``last_activity``); ``entries`` are the execution's ledger
    rows after this run's moves, so a unit still alive is one the provider says runs on."""
    if idle < stale_after:
        return StaleDecision("wait", None, f"its try was active {_ago(idle)} ago")
    units = eventual_outcome(entries)
    if units is UNSETTLED:
        return StaleDecision("flag", None, f"held by a try idle for {_ago(idle)} whose units still run")
    if op.finished_at is None:
        # The try never finished (its worker died): finish it as it would have, with no retry.
        recorded = op.outcome_at is not None
        outcome = op.error if recorded else units
        return StaleDecision(
            "finish", outcome, f"the try's worker never finished it; idle for {_ago(idle)}, every unit ended"
        )
    # Held for a retry that never came. A try that timed out ends with what its work became;
    # any other with its own error, once its units ended.
    if op.error_code is ErrorCode.OPERATION_TIMEOUT:
        outcome = units
    else:
        outcome = None if units is None else (op.error or units)
    target, _held = finish_target(outcome, will_retry=False)
    if target is TenantStatus.NEEDS_INVESTIGATION:
        assert outcome is not None
        return StaleDecision(
            "investigate",
            outcome,
            f"{_error_text(outcome)}: held for a retry that never came (idle {_ago(idle)}); "
            "that error needs a human",
        )
    why = "its work succeeded" if outcome is None else f"its last error {outcome.code.value} is retriable"
    return StaleDecision("release", outcome, f"held for a retry that never came (idle {_ago(idle)}); {why}")


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 3600:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
