"""Stopping what the ledger marked for cleanup, and nothing else.

``Cleaner.clean(backend, candidates)`` takes the rows of one backend group (rows
``pending_cleanup``, or ``stopping`` whose unit still runs) with what the provider said of them,
and for each:

    1. gone       the provider no longer knows the unit: nothing to stop
    2. verify     the provider must show the unit as this row's: ``find`` by the row's tenant and
                  execution (tags on ECS, labels and annotations on Kubernetes) has to return the
                  same resource for the same unit index and generation. A resource that does not
                  carry that identity is refused and never touched, whatever its name looks like
    3. stop       stop requests for every verified unit at once; the ones that failed with a
                  retriable error are tried again after a backoff, up to ``cleanup_attempts``

A row without a resource id (its launch answer was lost) is looked up the same way: ``find``
either returns its unit, which is then stopped, or nothing, and there is nothing to clean.
In a dry run steps 1 and 2 happen (they only read) and step 3 is skipped.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from airflow_compute_provider.errors import Classification, ComputeError, ComputeOperationError, ErrorCode
from airflow_compute_provider.errors.model import RootCause
from airflow_compute_provider.hooks.base import ComputeBackend, ExecutionRef, Unit, UnitPhase, UnitStatus
from airflow_compute_provider.recovery.report import SOURCE
from airflow_compute_provider.recovery.settings import RecoverySettings
from airflow_compute_provider.state.models import LedgerEntry

STOP_REASON = "compute maintenance: cleanup of a resource marked pending_cleanup"


class Verdict(enum.StrEnum):
    GONE = "gone"
    STOPPED = "stopped"
    #: dry run: verified, and a stop would be sent
    WOULD_STOP = "would_stop"
    REFUSED = "refused"
    FAILED = "failed"


@dataclass(frozen=True)
class Candidate:
    entry: LedgerEntry
    #: what the describe said; ``None`` for a row without a resource id
    status: UnitStatus | None


@dataclass(frozen=True)
class CleanupResult:
    entry: LedgerEntry
    verdict: Verdict
    #: the resource that was (or would be) stopped, once known
    resource_id: str | None
    attempts: int
    error: ComputeError | None
    detail: str


class Cleaner:
    def __init__(self, settings: RecoverySettings, sleep: Callable[[float], None]) -> None:
        self._settings = settings
        self._sleep = sleep

    def clean(self, backend: ComputeBackend, candidates: Sequence[Candidate]) -> list[CleanupResult]:
        results: list[CleanupResult] = []
        to_verify: list[Candidate] = []
        for c in candidates:
            if c.status is not None and c.status.phase is UnitPhase.VANISHED:
                results.append(_result(c, Verdict.GONE, detail="the provider no longer knows it"))
            else:
                to_verify.append(c)
        verified, rejected = self._verify(backend, to_verify)
        results.extend(rejected)
        if self._settings.dry_run:
            results.extend(
                _result(c, Verdict.WOULD_STOP, unit.resource_id, detail="verified; a stop would be sent")
                for c, unit in verified
            )
        else:
            results.extend(self._stop(backend, verified))
        return results

    def _verify(
        self, backend: ComputeBackend, candidates: Sequence[Candidate]
    ) -> tuple[list[tuple[Candidate, Unit]], list[CleanupResult]]:
        verified: list[tuple[Candidate, Unit]] = []
        rejected: list[CleanupResult] = []
        by_execution: dict[tuple[str, str], list[Candidate]] = {}
        for c in candidates:
            by_execution.setdefault((c.entry.tenant_id, c.entry.execution_id), []).append(c)
        for (tenant_id, execution_id), group in by_execution.items():
            try:
                found = backend.find(ExecutionRef(tenant_id, execution_id))
            except ComputeOperationError as exc:
                rejected.extend(
                    _result(c, Verdict.FAILED, error=exc.error, attempts=1, detail="could not verify it")
                    for c in group
                )
                continue
            ours = {(u.index, u.generation): u for u in found}
            for c in group:
                unit = ours.get((c.entry.unit_index, c.entry.generation))
                if c.entry.resource_id is None:
                    if unit is None:
                        rejected.append(_result(c, Verdict.GONE, detail="never launched: nothing to clean"))
                    else:
                        verified.append((c, unit))
                elif unit is not None and unit.resource_id == c.entry.resource_id:
                    verified.append((c, unit))
                else:
                    rejected.append(_refused(c))
        return verified, rejected

    def _stop(self, backend: ComputeBackend, verified: list[tuple[Candidate, Unit]]) -> list[CleanupResult]:
        results: list[CleanupResult] = []
        pending = verified
        attempts = self._settings.cleanup_attempts
        for attempt in range(1, attempts + 1):
            if not pending:
                break
            if attempt > 1:
                self._sleep(self._settings.backoff(attempt - 1))
            failures = _stop_round(backend, [unit for _, unit in pending])
            retry: list[tuple[Candidate, Unit]] = []
            for c, unit in pending:
                error = failures.get(unit.resource_id)
                if error is None:
                    results.append(_result(c, Verdict.STOPPED, unit.resource_id, attempts=attempt))
                elif error.classification is Classification.RETRIABLE and attempt < attempts:
                    retry.append((c, unit))
                else:
                    why = (
                        "not retriable"
                        if error.classification is not Classification.RETRIABLE
                        else "attempts used up"
                    )
                    results.append(
                        _result(
                            c,
                            Verdict.FAILED,
                            unit.resource_id,
                            attempts=attempt,
                            error=error,
                            detail=f"stop failed after {attempt} attempt(s), {why}: {error.message}",
                        )
                    )
            pending = retry
        return results


def _stop_round(backend: ComputeBackend, units: list[Unit]) -> dict[str, ComputeError]:
    """One stop request for ``units``; the failures by resource id."""
    try:
        return {unit.resource_id: error for unit, error in backend.stop(units, reason=STOP_REASON)}
    except ComputeOperationError as exc:
        return {unit.resource_id: exc.error for unit in units}


def _refused(c: Candidate) -> CleanupResult:
    e = c.entry
    error = ComputeError(
        code=ErrorCode.CLEANUP_FAILED,
        message=(
            f"resource {e.resource_id} does not carry the identity of this ledger row (tenant "
            f"{e.tenant_id!r}, execution {e.execution_id!r}, unit {e.unit_index} generation "
            f"{e.generation}); refused to stop it"
        ),
        root_cause=RootCause(provider=SOURCE, resource_id=e.resource_id, reason="identity_mismatch"),
        tenant_id=e.tenant_id,
        execution_id=e.execution_id,
        provider=e.provider,
        operation="cleanup",
    )
    return _result(c, Verdict.REFUSED, error=error, detail=error.message)


def _result(
    c: Candidate,
    verdict: Verdict,
    resource_id: str | None = None,
    *,
    attempts: int = 0,
    error: ComputeError | None = None,
    detail: str = "",
) -> CleanupResult:
    return CleanupResult(
        entry=c.entry,
        verdict=verdict,
        resource_id=resource_id or c.entry.resource_id,
        attempts=attempts,
        error=error,
        detail=detail,
    )
