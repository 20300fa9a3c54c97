"""Who may move a tenant, and where a finished try leaves it: pure decisions, no I/O.

``status.py`` says which moves exist; this module says which one applies:

    decide_begin     may this (execution, attempt) begin? START, ALREADY_BEGUN, or a refusal:
                     TENANT_STATE_CONFLICT (held for investigation) or CONFLICT (another holder)
    finish_target    the tenant status after a finished try, and whether its execution keeps it

A store implementation reads the rows, asks these functions, and writes what they decided, all
in one transaction.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from airflow_compute_provider.errors import (
    Classification,
    ComputeError,
    ComputeOperationError,
    ErrorCode,
)
from airflow_compute_provider.errors.model import RootCause
from airflow_compute_provider.state.models import Operation, Tenant
from airflow_compute_provider.state.status import OperationStatus, TenantStatus

#: ``root_cause.provider`` of the errors the store raises itself
STORE_SOURCE = "airflow-compute-provider.state"


class BeginDecision(enum.Enum):
    START = "start"
    #: this very try already began and is still running: return it, write nothing
    ALREADY_BEGUN = "already_begun"


@dataclass(frozen=True)
class BeginRequest:
    tenant_id: str
    execution_id: str
    operation: str
    provider: str
    attempt: int


def decide_begin(
    tenant: Tenant,
    request: BeginRequest,
    same_attempt: Operation | None,
    newest_attempt: int | None,
) -> BeginDecision:
    """Whether ``request`` may begin on ``tenant``.

    ``same_attempt`` is the operation already recorded for this execution and attempt, if any;
    ``newest_attempt`` the highest attempt recorded for this execution.
    """
    if tenant.status is TenantStatus.NEEDS_INVESTIGATION:
        raise refusal(
            request,
            ErrorCode.TENANT_STATE_CONFLICT,
            f"tenant {tenant.tenant_id!r} is held for investigation (execution "
            f"{tenant.execution_id!r} failed); an operator must release it first "
            f"(python -m airflow_compute_provider.state release {tenant.tenant_id} --note ...)",
            reason="needs_investigation",
        )
    if same_attempt is not None:
        running = (
            same_attempt.status is OperationStatus.IN_PROGRESS
            and tenant.status is TenantStatus.OPERATION_IN_PROGRESS
            and tenant.execution_id == request.execution_id
            and tenant.attempt == request.attempt
        )
        if running:
            return BeginDecision.ALREADY_BEGUN
        raise refusal(
            request,
            ErrorCode.CONFLICT,
            f"attempt {request.attempt} of execution {request.execution_id!r} already ran "
            f"({same_attempt.status.value}); a new try needs a new attempt number",
            reason="attempt_already_ran",
        )
    if tenant.held and tenant.execution_id != request.execution_id:
        raise refusal(
            request,
            ErrorCode.CONFLICT,
            f"tenant {tenant.tenant_id!r} is held by execution {tenant.execution_id!r} "
            f"({tenant.status.value}, attempt {tenant.attempt})",
            reason="held_by_another_execution",
        )
    if newest_attempt is not None and request.attempt < newest_attempt:
        raise refusal(
            request,
            ErrorCode.CONFLICT,
            f"attempt {request.attempt} of execution {request.execution_id!r} is stale: "
            f"attempt {newest_attempt} already began",
            reason="stale_attempt",
        )
    return BeginDecision.START


def finish_target(outcome: ComputeError | None, will_retry: bool) -> tuple[TenantStatus, bool]:
    """The tenant status after a finished try, and whether its execution still holds the tenant.

    Success frees the tenant. A failure with a retry coming keeps it for that retry. A failure
    the workflow gave up on needs a human when it is non-retriable or manual; a retriable one
    leaves the tenant ``retry_pending`` and free, so a later execution may try again.
    """
    if outcome is None:
        return TenantStatus.READY, False
    if will_retry:
        return TenantStatus.RETRY_PENDING, True
    if outcome.classification is Classification.RETRIABLE:
        return TenantStatus.RETRY_PENDING, False
    return TenantStatus.NEEDS_INVESTIGATION, False


def refusal(request: BeginRequest, code: ErrorCode, message: str, *, reason: str) -> ComputeOperationError:
    return ComputeOperationError(
        ComputeError(
            code=code,
            message=message,
            root_cause=RootCause(provider=STORE_SOURCE, reason=reason),
            provider=request.provider,
            operation=request.operation,
            tenant_id=request.tenant_id,
            execution_id=request.execution_id,
            attempt=request.attempt,
        )
    )
