"""Turning a matched rule into a ``ComputeError``, and the never-raise fallback.

    Cause          the provider's own account (code, message, status, ids, exit code, reason)
    build(...)     Cause + ErrorCode -> ComputeError with a short human sentence as message
    unknown(...)   UNKNOWN_PROVIDER_ERROR for input no rule (or no reader) could make sense of;
                   the raw input goes to the debug log, never to the error

Neither raises: a field pydantic refuses is dropped rather than losing the whole error.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass
from typing import Any

from airflow_compute_provider.errors import ComputeError, ErrorCode
from airflow_compute_provider.errors.model import RootCause
from airflow_compute_provider.normalize import _read

log = logging.getLogger("airflow_compute_provider.normalize")

_LABELS = {"ecs": "ECS", "kubernetes": "Kubernetes"}

# "<Provider>[ <target>] <phrase>: <provider's words>", e.g. "ECS RunTask was throttled: Rate
# exceeded" or "Kubernetes pod ns/p container main ran out of memory (exit code 137): OOMKilled".
# {t} is " <target>" and {for_t} " for <target>" when a target is known, else empty.
_PHRASES: dict[ErrorCode, str] = {
    ErrorCode.PROVIDER_TEMPORARILY_UNAVAILABLE: "{p}{t} failed on the provider's side",
    ErrorCode.PROVIDER_THROTTLED: "{p}{t} was throttled",
    ErrorCode.PROVIDER_UNREACHABLE: "{p} could not be reached{for_t}",
    ErrorCode.INSUFFICIENT_CAPACITY: "{p}{t} found no capacity",
    ErrorCode.INFRASTRUCTURE_INTERRUPTED: "{p}{t} was interrupted by its infrastructure",
    ErrorCode.IMAGE_PULL_FAILED: "{p}{t} could not pull its image",
    ErrorCode.CONFLICT: "{p}{t} ran into a conflicting change",
    ErrorCode.OPERATION_TIMEOUT: "{p}{t} timed out",
    ErrorCode.QUOTA_EXCEEDED: "{p}{t} exceeded a quota",
    ErrorCode.INVALID_CONFIGURATION: "{p}{t} was rejected as invalid",
    ErrorCode.RESOURCE_NOT_FOUND: "{p}{t} named something that does not exist",
    ErrorCode.IMAGE_NOT_FOUND: "{p}{t} named an image that does not exist",
    ErrorCode.CONTAINER_FAILED: "{p}{t} failed: a container exited with an error",
    ErrorCode.OUT_OF_MEMORY: "{p}{t} ran out of memory",
    ErrorCode.CONTAINER_START_FAILED: "{p}{t} could not start a container",
    ErrorCode.DEADLINE_EXCEEDED: "{p}{t} ran past its deadline",
    ErrorCode.CANCELLED: "{p}{t} was stopped by someone else",
    ErrorCode.PERMISSION_DENIED: "{p}{t} was denied permission",
    ErrorCode.AUTHENTICATION_FAILED: "{p} did not accept the credentials{for_t}",
    ErrorCode.UNKNOWN_PROVIDER_ERROR: "{p}{t} failed in a way no rule recognises",
}
_SUMMARY_LIMIT = 300


@dataclass(frozen=True)
class Cause:
    """What the provider said, field for field as ``RootCause`` stores it."""

    provider: str | None = None
    provider_code: str | None = None
    provider_message: str | None = None
    http_status: int | None = None
    request_id: str | None = None
    resource_id: str | None = None
    exit_code: int | None = None
    reason: str | None = None


def build(
    code: ErrorCode,
    cause: Cause,
    *,
    provider: str | None,
    operation: str | None = None,
    target: str | None = None,
    detail: str | None = None,
    retry_after_seconds: float | None = None,
) -> ComputeError:
    """A ``ComputeError`` for ``code``; ``target`` names what failed ("RunTask", "pod ns/x"),
    ``detail`` the provider's words the sentence ends with (by default its message)."""
    try:
        return ComputeError(
            code=code,
            message=_sentence(code, cause, provider, target or operation, detail),
            root_cause=_root_cause(cause),
            provider=provider,
            operation=operation,
            retry_after_seconds=retry_after_seconds,
        )
    except Exception:  # a field pydantic would not take: keep the code, drop the extras
        log.debug("could not build a full ComputeError for %s", code, exc_info=True)
        return ComputeError(code=code, message=f"{_LABELS.get(provider or '', 'The provider')} failure")


def log_raw(what: str, raw: Any, exc: BaseException | None = None) -> None:
    """The raw input no rule recognised, at debug level only (it may be large or sensitive)."""
    # A logging handler that raises must not turn into our exception.
    with contextlib.suppress(Exception):
        log.debug("no rule recognises this %s (%s): %s", what, exc or "no match", _read.text(raw, 2_000))


def unknown(provider: str | None, what: str, raw: Any, exc: BaseException | None = None) -> ComputeError:
    """UNKNOWN_PROVIDER_ERROR for ``raw`` that could not be read at all."""
    log_raw(what, raw, exc)
    message = None if exc is None else f"{type(exc).__name__} while reading the {what}"
    return build(
        ErrorCode.UNKNOWN_PROVIDER_ERROR,
        Cause(provider=provider or "network", provider_message=message),
        provider=provider,
        target=what,
    )


def _root_cause(cause: Cause) -> RootCause:
    try:
        return RootCause(**asdict(cause))
    except Exception:
        # One field out of range (an exit code beyond int64, say): keep the others.
        kept = {}
        for key, value in asdict(cause).items():
            try:
                RootCause(**{key: value})
            except Exception:
                continue
            kept[key] = value
        return RootCause(**kept)


def _sentence(
    code: ErrorCode, cause: Cause, provider: str | None, target: str | None, detail: str | None
) -> str:
    head = _PHRASES.get(code, "{p}{t} failed").format(
        p=_LABELS.get(provider or "", "The provider"),
        t=f" {target}" if target else "",
        for_t=f" for {target}" if target else "",
    )
    if cause.exit_code is not None and code in (ErrorCode.CONTAINER_FAILED, ErrorCode.OUT_OF_MEMORY):
        head += f" (exit code {cause.exit_code})"
    detail = detail or cause.provider_message or cause.reason or cause.provider_code
    if not detail:
        return head
    detail = " ".join(detail.split())
    if len(detail) > _SUMMARY_LIMIT:
        detail = detail[: _SUMMARY_LIMIT - 3] + "..."
    return f"{head}: {detail}"
