"""``hooks/error_context.py``: the one way context is stamped onto an error leaving a hook."""

from __future__ import annotations

import pytest

from airflow_compute_provider.errors import ComputeError, ComputeOperationError, ErrorCode
from airflow_compute_provider.errors.model import RootCause
from airflow_compute_provider.hooks.base import ExecutionRef
from airflow_compute_provider.hooks.error_context import ErrorContext, error_context

EXECUTION = ExecutionRef("acme", "dag:run:task:-1")


def _normalize(exc: BaseException) -> ComputeError:
    return ComputeError(
        code=ErrorCode.PROVIDER_THROTTLED,
        message=str(exc),
        operation="RunTask",
        root_cause=RootCause(provider="ecs", resource_id="pods/theirs"),
    )


def test_stamp_fills_the_ids_and_the_workflow_operation_replaces_the_api_call() -> None:
    error = ErrorContext("ecs", EXECUTION, "provision").stamp(_normalize(RuntimeError("slow down")))
    assert (error.provider, error.tenant_id, error.execution_id) == ("ecs", "acme", "dag:run:task:-1")
    assert error.operation == "provision"
    assert ErrorContext("ecs").stamp(_normalize(RuntimeError("x"))).operation == "RunTask"


def test_the_resource_id_is_filled_or_with_replace_resource_replaced() -> None:
    error = _normalize(RuntimeError("x"))
    assert ErrorContext("kubernetes", resource_id="mine").stamp(error).root_cause.resource_id == "pods/theirs"
    replaced = ErrorContext("kubernetes", resource_id="mine", replace_resource=True).stamp(error)
    assert replaced.root_cause.resource_id == "mine"


def test_the_context_manager_raises_every_other_exception_as_a_stamped_compute_error() -> None:
    boom = RuntimeError("connection reset")
    with (
        pytest.raises(ComputeOperationError) as caught,
        error_context(ErrorContext("ecs", EXECUTION), _normalize),
    ):
        raise boom
    assert caught.value.__cause__ is boom
    assert caught.value.error.tenant_id == "acme"
    assert caught.value.error.code is ErrorCode.PROVIDER_THROTTLED


def test_a_compute_operation_error_passes_unchanged() -> None:
    inner = ComputeOperationError(ComputeError(code=ErrorCode.CONFLICT, message="held"))
    with (
        pytest.raises(ComputeOperationError) as caught,
        error_context(ErrorContext("ecs", EXECUTION), _normalize),
    ):
        raise inner
    assert caught.value is inner
    assert caught.value.error.tenant_id is None
