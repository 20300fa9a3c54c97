"""After Airflow decided: the tenant's state and the log level follow whether a retry comes.

A failed try raises ``ComputeOperationError``, and only then does Airflow decide (through the
``retry_policy`` on 3.3+, else ``retries``) whether another try follows. The operator cannot
know that while it runs, so it finishes the operation from the callbacks Airflow calls after
deciding:

    AfterAirflowDecided      the retry / failure callback every compute operator adds beside
                             the DAG author's own; it finds the operator in the callback's
                             context and calls its ``finish_after_decision``
    finish_after_decision()  a retry follows: the tenant waits for it (``retry_pending``) and
                             the failure is logged as a warning; it does not: the state store's
                             rule for the tenant, an error-level log, and a ``retry_failed``
                             partial failure rolled back after all (``rollback.py``)

The error it finishes with is the one the try recorded in the store; failing that the one the
exception carries; failing that one made from whatever exception ended the try (a killed
worker, an exception in Airflow itself). A try that never held the tenant (bad arguments, a
held tenant) only has its failure logged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from airflow_compute_provider.errors import ComputeError, ComputeOperationError, ErrorCode
from airflow_compute_provider.hooks.base import ComputeBackend
from airflow_compute_provider.lifecycle.rollback import roll_back_left_running
from airflow_compute_provider.lifecycle.tries import Try
from airflow_compute_provider.observability import log_failure, operation_logger, redact_error
from airflow_compute_provider.state.status import SupersededTryError
from airflow_compute_provider.state.store import TenantStateStore


@runtime_checkable
class DecidingTask(Protocol):
    """What the callback needs of the task: the compute operator's ``finish_after_decision``
    (``operators/base.py``). A protocol, so the lifecycle never imports the operators."""

    def finish_after_decision(self, context: Any, *, will_retry: bool) -> None: ...


class AfterAirflowDecided:
    """The retry / failure callback every compute operator adds beside the author's own.

    It finds the operator through the callback's context rather than holding it: Airflow runs
    callbacks on the task object it executed, which is a copy of the one the DAG file built.
    """

    def __init__(self, *, will_retry: bool) -> None:
        self.will_retry = will_retry

    def __call__(self, context: Any) -> None:
        task = context.get("task") or getattr(context.get("ti"), "task", None)
        if isinstance(task, DecidingTask):
            task.finish_after_decision(context, will_retry=self.will_retry)

    def __repr__(self) -> str:
        return f"AfterAirflowDecided(will_retry={self.will_retry})"


def finish_after_decision(
    t: Try | None,
    context: Any,
    *,
    will_retry: bool,
    store: Callable[[], TenantStateStore],
    make_backend: Callable[[], ComputeBackend],
) -> None:
    """Finish the try ``t`` (``None``: the try never held the tenant) once Airflow decided.
    ``store`` and ``make_backend`` are called only when needed: a try refused before it held
    the tenant may have no store to open."""
    raised = _error_of(context.get("exception"))
    if t is None:
        # The try never held the tenant (bad arguments, or the store refused it).
        if raised is not None:
            raised = redact_error(raised)
            log_failure(operation_logger(**_log_context(raised)), raised, final=not will_retry)
        return
    opened = store()
    error = redact_error(opened.last_error(t.tenant_id, t.execution_id) or raised or _unexplained(context))
    try:
        if not will_retry and error.cleanup is not None and error.cleanup.action == "left_running":
            error = roll_back_left_running(opened, t, error, make_backend)
        opened.finish_operation(t.tenant_id, t.execution_id, error, will_retry=will_retry, by=t.ref)
    except SupersededTryError as exc:
        # A newer try began meanwhile: the tenant and the units are its business now.
        t.log.error(f"this try was stopped ({exc.reason}); it finishes nothing", newest=exc.newest)
        return
    log_failure(t.log, error, final=not will_retry)


def _error_of(exception: BaseException | None) -> ComputeError | None:
    if isinstance(exception, ComputeOperationError):
        return exception.error
    return None


def _log_context(error: ComputeError) -> dict[str, Any]:
    return {
        "tenant_id": error.tenant_id,
        "operation": error.operation,
        "execution_id": error.execution_id,
        "provider": error.provider,
        "attempt": error.attempt,
    }


def _unexplained(context: Any) -> ComputeError:
    """The try failed before it could record why (a killed worker, an exception in Airflow)."""
    from airflow_compute_provider.normalize import from_exception

    exception = context.get("exception")
    if exception is None:
        return ComputeError(
            code=ErrorCode.UNKNOWN_PROVIDER_ERROR, message="the try failed without an exception"
        )
    return from_exception(exception)


__all__ = ["AfterAirflowDecided", "DecidingTask", "finish_after_decision"]
