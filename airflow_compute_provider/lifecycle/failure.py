"""How a try fails: its error recorded everywhere it is read, then the exception it raises.

    record_failure(...)   the error completed with the try's context (provider, tenant,
                          execution id, attempt, the workflow's operation) and its secrets
                          masked; then pushed to XCom ``compute_error``, counted
                          (``compute.errors``), kept with the operation in the state store, and
                          written with its root cause to the debug log
    exception_for(...)    the exception that carries it: ``ComputeOperationError``, which lets
                          Airflow's retry policy decide, or ``ComputeTaskAborted`` where the
                          operator fails fast itself (``policy.operator_aborts``)
    push_error(...)       the XCom push alone, for an argument error (no try, nothing to record)

The lifecycle (``base.py``) records and raises through these once per failed try; what the
tenant's state becomes waits for Airflow's decision (``decisions.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

try:
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # Airflow < 3.2 keeps it in airflow.exceptions
    from airflow.exceptions import AirflowFailException  # type: ignore[no-redef]

from airflow_compute_provider import metrics
from airflow_compute_provider.errors import ComputeError, ComputeOperationError
from airflow_compute_provider.lifecycle.tries import Try
from airflow_compute_provider.lifecycle.xcom import XCOM_ERROR_KEY
from airflow_compute_provider.observability import log_raw_response, redact_error
from airflow_compute_provider.policy import operator_aborts
from airflow_compute_provider.state.store import TenantStateStore


class ComputeTaskAborted(ComputeOperationError, AirflowFailException):
    """A compute failure that no retry can fix; Airflow fails the task without retrying.

    Raised for invalid arguments and for non-retriable and manual-intervention errors when the
    task has no ``retry_policy``. With a policy on Airflow 3.3+ the policy decides and this is
    never raised (it would bypass the policy); before 3.3 it is raised when the policy says FAIL.
    """


def record_failure(
    context: Any, t: Try, error: ComputeError, *, store: Callable[[], TenantStateStore] | None
) -> ComputeError:
    """Record the try's failure; ``store`` is ``None`` where the try may not record it (the
    tenant was refused: someone else's to change). Returns the error as recorded."""
    # The workflow's operation ("provision") replaces the API call a normalizer named. From
    # here on (XCom, the store, the logs, the exception) secrets the provider echoed are masked.
    error = redact_error(
        error.with_context(
            provider=t.provider, execution_id=t.execution_id, tenant_id=t.tenant_id, attempt=t.attempt
        ).model_copy(update={"operation": t.args.operation})
    )
    push_error(context, error)
    metrics.error(error, provider=t.provider)
    if store is not None:
        store().record_outcome(t.tenant_id, t.execution_id, error, by=t.ref)
    log_raw_response(t.log, error.to_json_dict(), what="compute error (normalized), with its root cause")
    return error


def exception_for(error: ComputeError, retry_policy: Any, context: Any = None) -> ComputeOperationError:
    # With a retry policy on Airflow 3.3+ the policy decides (AirflowFailException would
    # bypass it); without one, or before 3.3, policy.operator_aborts says when to fail fast.
    if operator_aborts(error, retry_policy, context):
        return ComputeTaskAborted(error)
    return ComputeOperationError(error)


def push_error(context: Any, error: ComputeError) -> None:
    context["ti"].xcom_push(key=XCOM_ERROR_KEY, value=error.to_json_dict())


__all__ = ["ComputeTaskAborted", "exception_for", "push_error", "record_failure"]
