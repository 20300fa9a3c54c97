"""ECS failures -> ``ComputeError``: API errors, RunTask refusals and stopped tasks.

    from_client_error(err)          a botocore ``ClientError`` (sync or aiobotocore)
    from_run_task_response(resp)    one error per ``failures[]`` entry of RunTask / StartTask
    from_stopped_task(task)         a DescribeTasks task; ``None`` when it succeeded

Each reads its input into ``Facts`` and looks them up in a table of ``ecs_rules``. Nothing here
imports botocore: a ``ClientError`` is read through its ``response`` and ``operation_name``
attributes. Every function catches everything and degrades to UNKNOWN_PROVIDER_ERROR.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_compute_provider.errors import ComputeError, ErrorCode
from airflow_compute_provider.normalize import _read
from airflow_compute_provider.normalize._result import Cause, build, log_raw, unknown
from airflow_compute_provider.normalize.ecs_rules import (
    CLIENT_ERROR_RULES,
    RUN_TASK_FAILURE_RULES,
    STOPPED_TASK_RULES,
)
from airflow_compute_provider.normalize.rules import Facts, best_match, first_match

PROVIDER = "ecs"

# Task states before the task has stopped; a task there has not failed (yet).
_NOT_STOPPED = frozenset({"PROVISIONING", "PENDING", "ACTIVATING", "RUNNING"})


def from_client_error(err: Any) -> ComputeError:
    """Normalize a botocore ``ClientError`` raised by an ECS call."""
    try:
        return _from_client_error(err)
    except Exception as exc:
        return unknown(PROVIDER, "ClientError", err, exc)


def from_run_task_response(response: Any) -> list[ComputeError]:
    """One ``ComputeError`` per ``failures[]`` entry of a RunTask / StartTask response."""
    try:
        failures = _read.items(_read.mapping(response).get("failures"))
    except Exception as exc:
        return [unknown(PROVIDER, "RunTask response", response, exc)]
    errors = []
    for failure in failures:
        try:
            errors.append(_from_failure(failure))
        except Exception as exc:
            errors.append(unknown(PROVIDER, "RunTask failure", failure, exc))
    return errors


def from_stopped_task(task: Any) -> ComputeError | None:
    """Why a task stopped, or ``None`` when every essential container exited 0."""
    try:
        return _from_stopped_task(task)
    except Exception as exc:
        return unknown(PROVIDER, "stopped task", task, exc)


# --- API errors -----------------------------------------------------------------------------------


def _from_client_error(err: Any) -> ComputeError:
    # A botocore WaiterError keeps the failed call's response as ``last_response``.
    response = _read.mapping(getattr(err, "response", None) or getattr(err, "last_response", None))
    error = _read.mapping(response.get("Error"))
    metadata = _read.mapping(response.get("ResponseMetadata"))
    operation = _read.text(getattr(err, "operation_name", None), 200)
    code = _read.text(error.get("Code"), 200)
    message = _read.text(error.get("Message") or error.get("message"))
    if message is None and code is None:
        message = _read.text(err)  # not shaped like a ClientError: its text is all we have
    status = _read.integer(metadata.get("HTTPStatusCode"))
    request_id = _read.text(metadata.get("RequestId"), 200) or _read.header(
        metadata.get("HTTPHeaders"), "x-amzn-requestid"
    )
    facts = Facts(provider_code=code, http_status=status, message=message)
    rule = first_match(CLIENT_ERROR_RULES, facts)
    cause = Cause(
        provider=PROVIDER,
        provider_code=code,
        provider_message=message,
        http_status=status,
        request_id=request_id,
        resource_id=_resource_ids(error),
    )
    if rule is None or rule.code is None:
        return _unmatched(cause, operation, err, operation)
    return build(rule.code, cause, provider=PROVIDER, operation=operation)


def _resource_ids(error: Mapping[str, Any]) -> str | None:
    # A ConflictException for a reused clientToken names the tasks that token already started.
    ids = [_read.text(value, 2_048) for value in _read.items(error.get("resourceIds"))]
    return ",".join(i for i in ids if i) or None


# --- RunTask failures[] ---------------------------------------------------------------------------


def _from_failure(failure: Any) -> ComputeError:
    entry = _read.mapping(failure)
    reason = _read.text(entry.get("reason"))
    detail = _read.text(entry.get("detail"))
    arn = _read.text(entry.get("arn"), 2_048)
    facts = Facts(provider_code=reason, message=detail)
    rule = first_match(RUN_TASK_FAILURE_RULES, facts)
    cause = Cause(
        provider=PROVIDER,
        provider_code=reason,
        provider_message=detail or reason,
        resource_id=arn,
        reason=reason,
    )
    if rule is None or rule.code is None:
        return _unmatched(cause, "RunTask", failure, "RunTask")
    return build(rule.code, cause, provider=PROVIDER, operation="RunTask")


# --- stopped tasks --------------------------------------------------------------------------------


def _from_stopped_task(task: Any) -> ComputeError | None:
    task = _read.mapping(task)
    stop_code = _read.text(task.get("stopCode"), 200)
    stopped_reason = _read.text(task.get("stoppedReason"))
    status = (_read.text(task.get("lastStatus"), 50) or "").upper()
    if status in _NOT_STOPPED and not stop_code and not stopped_reason:
        return None

    containers = [_read.mapping(c) for c in _read.items(task.get("containers"))]
    essential = [c for c in containers if c.get("essential") is not False]
    failed = [c for c in essential if _read.integer(c.get("exitCode")) != 0]
    if essential and not failed:
        return None  # every essential container exited 0: whatever stopped it, the work is done

    def facts_for(container: Mapping[str, Any]) -> Facts:
        return Facts(
            provider_code=stop_code,
            message=stopped_reason,
            reason=_read.text(container.get("reason")),
            exit_code=_read.integer(container.get("exitCode")),
        )

    # No container list at all: the task-level stop code and reason are all there is.
    candidates = [facts_for(c) for c in failed] or [facts_for({})]
    match = best_match(STOPPED_TASK_RULES, candidates)
    task_arn = _read.text(task.get("taskArn"), 2_048)
    target = f"task {task_arn.rsplit('/', 1)[-1]}" if task_arn else "task"
    rule, chosen = match if match is not None else (None, candidates[0])
    if rule is None or rule.code is None:
        return _unmatched(_stopped_cause(chosen, task_arn), target, task)
    return build(
        rule.code,
        _stopped_cause(chosen, task_arn),
        provider=PROVIDER,
        target=target,
        detail=chosen.reason or chosen.message,  # the container's own reason is the more telling
    )


def _stopped_cause(facts: Facts, task_arn: str | None) -> Cause:
    return Cause(
        provider=PROVIDER,
        provider_code=facts.provider_code,
        # The task's stoppedReason is the provider's message; the container's own reason (a
        # CannotPullContainerError text, say) goes to ``reason`` next to its exit code.
        provider_message=facts.message or facts.reason,
        resource_id=task_arn,
        exit_code=facts.exit_code,
        reason=facts.reason,
    )


def _unmatched(cause: Cause, target: str | None, raw: Any, operation: str | None = None) -> ComputeError:
    log_raw(target or "ECS failure", raw)
    return build(
        ErrorCode.UNKNOWN_PROVIDER_ERROR, cause, provider=PROVIDER, operation=operation, target=target
    )
