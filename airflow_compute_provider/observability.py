"""Logging for compute operations: bound context, level by outcome, redacted raw payloads.

Three pieces, used by the operation lifecycle:

    operation_logger(...)   a structlog logger with tenant id, operation, execution id, provider
                            and attempt bound once, so every record carries them as fields
    log_failure(...)        one record per failure, its level chosen by what Airflow decided:
                            ``warning`` while a retry follows, ``error`` when the failure is final
    log_raw_response(...)   the provider's raw response at debug level, secrets redacted
    redact_error(...)       a ComputeError with registered secrets masked in its text, before it
                            is logged, pushed to XCom or stored (providers echo requests in errors)

Redaction works twice over: values that look like secrets by their key (passwords, tokens,
environment values) are replaced structurally, and every value registered with Airflow's
``mask_secret`` (see ``register_secrets``) is masked by Airflow's own secrets masker.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import structlog

from airflow_compute_provider.errors import ComputeError

LOGGER_NAME = "airflow_compute_provider"
REDACTED = "***"
#: how deep redaction looks into a payload (a pod's JSON, an error with its units' errors)
_MAX_DEPTH = 32

# Keys whose values are secret wherever they appear in a provider payload.
_SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credential|"
    r"authorization|auth|cookie|session|signature|bearer|kube_config|client[_-]?key)",
    re.IGNORECASE,
)
# Lists of {"name": ..., "value": ...} pairs: ECS container overrides' ``environment`` and a
# pod's ``env``. Their values are user data that may hold secrets, so every one is hidden.
_NAME_VALUE_LISTS = frozenset({"environment", "env", "env_vars"})
# Mappings whose every value is user data that may be secret (an operator's ``env_vars``).
_SECRET_MAPS = frozenset({"env_vars"})
# Idempotency and pagination tokens match the pattern but are ours, not secrets; masking them
# would hide execution keys throughout the logs.
_NOT_SECRET = frozenset({"clienttoken", "nexttoken", "continue"})


def _is_secret_key(key: str) -> bool:
    return key.lower() not in _NOT_SECRET and _SECRET_KEY.search(key) is not None


def operation_logger(
    *,
    tenant_id: str | None,
    operation: str | None,
    execution_id: str | None,
    provider: str | None,
    attempt: int | None = None,
) -> Any:
    """A logger with the operation's context bound once; records carry it as fields."""
    return structlog.get_logger(LOGGER_NAME).bind(
        tenant_id=tenant_id,
        operation=operation,
        execution_id=execution_id,
        provider=provider,
        attempt=attempt,
    )


def failure_fields(error: ComputeError) -> dict[str, Any]:
    """The fields of a failure record: the code, classification and root cause, flat."""
    cause = error.root_cause
    fields: dict[str, Any] = {
        "code": error.code.value,
        "classification": error.classification.value,
        "error_message": error.message,
        "provider_code": cause.provider_code,
        "provider_message": cause.provider_message,
        "http_status": cause.http_status,
        "request_id": cause.request_id,
        "resource_id": cause.resource_id,
        "exit_code": cause.exit_code,
        "reason": cause.reason,
    }
    if error.units is not None:
        fields["units_failed"] = [u.index for u in error.units.failed]
        fields["units_succeeded"] = [u.index for u in error.units.succeeded]
        fields["units_running"] = [u.index for u in error.units.running]
    if error.cleanup is not None:
        fields["cleanup"] = error.cleanup.action
    if error.output is not None:
        fields["last_lines"] = error.output.lines  # the failed unit's, masked with the error
    return {k: v for k, v in fields.items() if v is not None}


def log_failure(logger: Any, error: ComputeError, *, final: bool) -> None:
    """Log a failure once Airflow has decided: error when final, warning when a retry follows."""
    event = "compute operation failed" if final else "compute operation failed, retry follows"
    if final:
        logger.error(event, final=True, **failure_fields(error))
    else:
        logger.warning(event, final=False, **failure_fields(error))


def log_raw_response(logger: Any, payload: Any, *, what: str = "provider response") -> None:
    """The provider's raw response, for ops debugging; at debug level only, redacted."""
    logger.debug(what, raw=redact_payload(payload))


def redact_error(error: ComputeError) -> ComputeError:
    """``error`` with every secret registered with Airflow's masker replaced in its text.

    A provider may echo what a request carried (an environment value, a token) inside its error
    message, and that message travels on in the error: to XCom, the state store and the logs.
    Airflow masks registered secrets in the log lines its workers send; XCom values and the
    state store it does not touch, so the error is masked before it goes anywhere."""
    try:
        from airflow.sdk.log import redact
    except ImportError:  # pragma: no cover - Airflow is a dependency
        return error
    data = error.to_json_dict()
    masked = _masked(redact, data)
    if masked == data:
        return error
    return ComputeError.model_validate(masked)


def redact_payload(payload: Any) -> Any:
    """A copy of ``payload`` with secret-looking values and registered secrets masked."""
    structural = _redact(payload, depth=0)
    try:
        from airflow.sdk.log import redact
    except ImportError:  # pragma: no cover - Airflow is a dependency; keep logging safe anyway
        return structural
    return _masked(redact, structural)


def _masked(redact: Any, value: Any) -> Any:
    # Airflow's masker stops at depth 5 by default and returns anything deeper as it is: a unit's
    # error inside an error (units.failed[0].error.root_cause.provider_message) is deeper.
    try:
        return redact(value, max_depth=_MAX_DEPTH)
    except TypeError:  # pragma: no cover - a masker without max_depth
        return redact(value)


def _redact(value: Any, *, depth: int, key: str | None = None) -> Any:
    if depth > _MAX_DEPTH:
        return REDACTED
    if key is not None and _is_secret_key(key) and not isinstance(value, Mapping | list | tuple):
        return REDACTED if value not in (None, "") else value
    if isinstance(value, Mapping):
        return {k: _redact_entry(str(k), v, depth) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, depth=depth + 1, key=key) for v in value]
    return value


def _redact_entry(key: str, value: Any, depth: int) -> Any:
    if key in _NAME_VALUE_LISTS and isinstance(value, list):
        return [_hide_value(item) for item in value]
    return _redact(value, depth=depth + 1, key=key)


def _hide_value(item: Any) -> Any:
    if isinstance(item, Mapping) and "value" in item:
        return {**item, "value": REDACTED}
    if isinstance(item, Mapping):
        return _redact(item, depth=1)
    return REDACTED


def register_secrets(request: Any) -> int:
    """Register every secret-looking value of a launch request with Airflow's ``mask_secret``,
    so no log line, XCom or stored error can show it. Returns how many were registered."""
    from airflow.sdk.log import mask_secret

    found = secret_values(request)
    for secret in found:
        mask_secret(secret)
    return len(found)


def secret_values(request: Any) -> list[str]:
    """Every secret-looking value of a launch request (by key, and every environment value):
    what ``register_secrets`` registers here, and what a trigger masks in the triggerer."""
    found: list[str] = []
    _collect_secrets(request, found, key=None, depth=0)
    return sorted(set(found))


def _collect_secrets(value: Any, found: list[str], *, key: str | None, depth: int) -> None:
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            if str(k) in _NAME_VALUE_LISTS and isinstance(v, list):
                found.extend(
                    str(item["value"]) for item in v if isinstance(item, Mapping) and item.get("value")
                )
            elif str(k) in _SECRET_MAPS and isinstance(v, Mapping):
                found.extend(str(item) for item in v.values() if item)
            else:
                _collect_secrets(v, found, key=str(k), depth=depth + 1)
    elif isinstance(value, list | tuple):
        for v in value:
            _collect_secrets(v, found, key=key, depth=depth + 1)
    elif key is not None and _is_secret_key(key) and isinstance(value, str) and value:
        found.append(value)
