"""Who may move a tenant, and where a finished try leaves it: pure decisions, no I/O.

``status.py`` says which moves exist; this module says which one applies:

    decide_begin     may this try of an execution begin? START (the next attempt), ALREADY_BEGUN,
                     TAKE_OVER (the same Airflow try in a second process), or a refusal:
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
from airflow_compute_provider.state.status import TenantStatus

#: ``root_cause.provider`` of the errors the store raises itself
STORE_SOURCE = "airflow-compute-provider.state"


class BeginDecision(enum.Enum):
    #: a new try: the execution's next attempt number
    START = "start"
    #: this very try (same Airflow try, same process) already began and is still running:
    #: return it, write nothing
    ALREADY_BEGUN = "already_begun"
    #: a second process runs the same Airflow try (a double run, or the same try rerun after
    #: its worker died): it takes the try over, and the first process's writes are refused
    TAKE_OVER = "take_over"


@dataclass(frozen=True)
class BeginRequest:
    tenant_id: str
    execution_id: str
    operation: str
    provider: str
    #: Airflow's try number (shown; with ``airflow_ti`` it recognises a second run of one try)
    attempt: int | None
    token: str = ""
    airflow_ti: str | None = None


def decide_begin(tenant: Tenant, request: BeginRequest, newest: Operation | None) -> BeginDecision:
    """Whether ``request`` may begin on ``tenant``, and how.

    ``newest`` is the execution's newest try, if any. Tries are numbered by the store: any
    begin that is not the same Airflow try as an unfinished ``newest`` is the execution's next
    try (a retry, a clear, or a new DAG run of the same execution id); what older tries left on
    the provider is reconcile's business, and their later writes are refused.

    The same Airflow try (same task instance, same try number) begun again while its operation
    is unfinished is the same try in a second process: **the newest begin wins**. Airflow only
    starts a try twice when it believes the first process gone (its worker died, or lost its
    heartbeat and was rescheduled), so the second takes over and the first, should it still
    run, is refused at its next write: it cannot record an intent, hence cannot launch.
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
    if newest is not None and newest.finished_at is None and _same_airflow_try(newest, request):
        holds = (
            tenant.status is TenantStatus.OPERATION_IN_PROGRESS
            and tenant.execution_id == request.execution_id
            and tenant.attempt == newest.attempt
        )
        if holds:
            if newest.try_token == request.token:
                return BeginDecision.ALREADY_BEGUN
            return BeginDecision.TAKE_OVER
    if tenant.held and tenant.execution_id != request.execution_id:
        raise refusal(
            request,
            ErrorCode.CONFLICT,
            f"tenant {tenant.tenant_id!r} is held by execution {tenant.execution_id!r} "
            f"({tenant.status.value}, attempt {tenant.attempt})",
            reason="held_by_another_execution",
        )
    return BeginDecision.START


def _same_airflow_try(op: Operation, request: BeginRequest) -> bool:
    return op.airflow_ti == request.airflow_ti and op.airflow_try_number == request.attempt


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
