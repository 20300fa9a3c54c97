"""Turning what the units did into the operation's result, or into its one ``ComputeError``.

    success_result(...)    the XCom return value: execution id and every unit's end state
    units_report(...)      every unit, sorted into succeeded / running / pending / failed
    failure_error(...)     the operation's error: the failed unit's own error when nothing else
                           started, else PARTIAL_FAILURE listing every unit
    timeout_error(...)     OPERATION_TIMEOUT with the units left running

A unit's own error keeps its code; the operation's error takes the code of its most severe
failed unit unless some other unit succeeded or still runs, which makes it a partial failure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from airflow_compute_provider.errors import ComputeError, ErrorCode
from airflow_compute_provider.errors.model import CleanupReport, UnitReport, UnitsReport
from airflow_compute_provider.hooks.base import UnitPhase, UnitStatus


def success_result(execution_id: str, statuses: Sequence[UnitStatus]) -> dict[str, Any]:
    return {
        "execution_id": execution_id,
        "units": [
            {
                "index": s.unit.index,
                "resource_id": s.unit.resource_id,
                "status": s.phase.value,
                "exit_code": s.exit_code,
            }
            for s in sorted(statuses, key=lambda s: s.unit.index)
        ],
    }


def units_report(
    statuses: Iterable[UnitStatus],
    failures: Iterable[tuple[int, str | None, ComputeError]] = (),
) -> UnitsReport:
    """Every unit by where it ended; ``failures`` are (index, resource id, error) and win over
    the phase a status reports (a unit stuck pending past its grace period has failed)."""
    failed = {index: UnitReport(index=index, resource_id=rid, error=err) for index, rid, err in failures}
    buckets: dict[UnitPhase, list[UnitReport]] = {phase: [] for phase in UnitPhase}
    for status in statuses:
        if status.unit.index not in failed:
            report = UnitReport(
                index=status.unit.index,
                resource_id=status.unit.resource_id,
                error=status.error if status.phase.terminal else None,
            )
            buckets[status.phase].append(report)
    return UnitsReport(
        succeeded=_by_index(buckets[UnitPhase.SUCCEEDED]),
        running=_by_index(buckets[UnitPhase.RUNNING]),
        pending=_by_index(buckets[UnitPhase.PENDING]),
        failed=_by_index([*failed.values(), *buckets[UnitPhase.FAILED], *buckets[UnitPhase.VANISHED]]),
    )


def failure_error(report: UnitsReport, *, count: int) -> ComputeError:
    """The operation's error for a set of units of which at least one failed."""
    failed = [u for u in report.failed if u.error is not None]
    if not failed:
        raise ValueError("failure_error needs at least one failed unit with its error")
    worst = max(failed, key=lambda u: (u.error.classification.severity if u.error else -1, -u.index)).error
    assert worst is not None  # filtered above; keeps mypy aware
    others_started = bool(report.succeeded or report.running or report.pending)
    if not others_started:
        if count == 1:
            return worst.model_copy(update={"units": report})
        return ComputeError.model_validate(
            {
                **worst.model_dump(exclude={"units", "message"}),
                "message": f"all {count} units failed; the most severe: {worst.message}",
                "units": report,
            }
        )
    started = len(report.succeeded) + len(report.running) + len(report.pending)
    return ComputeError(
        code=ErrorCode.PARTIAL_FAILURE,
        message=(
            f"{len(report.failed)} of {count} units failed, {started} succeeded or running; "
            f"the most severe: {worst.code.value}: {worst.message}"
        ),
        root_cause=worst.root_cause,
        retry_after_seconds=worst.retry_after_seconds,
        units=report,
        output=worst.output,  # the most severe unit's last lines, as for a single unit
    )


def timeout_error(
    report: UnitsReport, *, timeout: timedelta, execution_timeout: bool = False
) -> ComputeError:
    """OPERATION_TIMEOUT: the try's deadline came first. ``execution_timeout``: the deadline was
    the task's ``execution_timeout``, not the operation's own ``timeout``; the error is the same.
    A unit still pending is named pending, never running."""
    left = [u.resource_id for u in (*report.running, *report.pending) if u.resource_id]
    what = (
        f"the task's execution_timeout ({_human(timeout)}) passed before the operation settled"
        if execution_timeout
        else f"operation did not settle within {_human(timeout)}"
    )
    where = f"{len(report.running)} unit(s) left running"
    if report.pending:
        where += f" and {len(report.pending)} still pending"
    return ComputeError(
        code=ErrorCode.OPERATION_TIMEOUT,
        message=f"{what}; {where} for the next try to reattach",
        units=report,
        cleanup=CleanupReport(action="left_running", resources=left),
    )


def with_cleanup(error: ComputeError, cleanup: CleanupReport) -> ComputeError:
    return error.model_copy(update={"cleanup": cleanup})


def _by_index(units: list[UnitReport]) -> list[UnitReport]:
    return sorted(units, key=lambda u: u.index)


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600}h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60}m"
    return f"{seconds}s"
