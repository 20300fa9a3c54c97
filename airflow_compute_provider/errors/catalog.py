"""The error catalog: every standard code, its default classification and what it means.

``ErrorCode`` names what went wrong, ``Classification`` says what a workflow may do about
it, and ``CATALOG`` joins the two. Classification follows from the code alone; a DAG author
changes what *happens* on a code in a retry policy, never what the error *is*.

Classifications are ordered by severity so that the most severe of several failures can be
picked with ``max()``::

    RETRIABLE  <  NON_RETRIABLE  <  REQUIRES_MANUAL_INTERVENTION
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType


class Classification(enum.StrEnum):
    """What a workflow may do about a failure, comparable by severity."""

    RETRIABLE = "retriable"
    NON_RETRIABLE = "non_retriable"
    REQUIRES_MANUAL_INTERVENTION = "requires_manual_intervention"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    # str's own comparisons would order the members alphabetically; severity is the order
    # every caller means.
    def __lt__(self, other: object) -> bool:
        if isinstance(other, Classification):
            return self.severity < other.severity
        return NotImplemented

    def __le__(self, other: object) -> bool:
        if isinstance(other, Classification):
            return self.severity <= other.severity
        return NotImplemented

    def __gt__(self, other: object) -> bool:
        if isinstance(other, Classification):
            return self.severity > other.severity
        return NotImplemented

    def __ge__(self, other: object) -> bool:
        if isinstance(other, Classification):
            return self.severity >= other.severity
        return NotImplemented

    __hash__ = str.__hash__

    @classmethod
    def most_severe(cls, classifications: Iterable[Classification]) -> Classification | None:
        """The most severe of ``classifications``, or ``None`` when there are none."""
        return max(classifications, default=None)


_SEVERITY = {
    Classification.RETRIABLE: 0,
    Classification.NON_RETRIABLE: 1,
    Classification.REQUIRES_MANUAL_INTERVENTION: 2,
}


class ErrorCode(enum.StrEnum):
    """The standard failure codes, identical for every provider (values equal names)."""

    PROVIDER_TEMPORARILY_UNAVAILABLE = "PROVIDER_TEMPORARILY_UNAVAILABLE"
    PROVIDER_THROTTLED = "PROVIDER_THROTTLED"
    PROVIDER_UNREACHABLE = "PROVIDER_UNREACHABLE"
    INSUFFICIENT_CAPACITY = "INSUFFICIENT_CAPACITY"
    INFRASTRUCTURE_INTERRUPTED = "INFRASTRUCTURE_INTERRUPTED"
    IMAGE_PULL_FAILED = "IMAGE_PULL_FAILED"
    CONFLICT = "CONFLICT"
    OPERATION_TIMEOUT = "OPERATION_TIMEOUT"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    INVALID_CONFIGURATION = "INVALID_CONFIGURATION"
    RESOURCE_NOT_FOUND = "RESOURCE_NOT_FOUND"
    IMAGE_NOT_FOUND = "IMAGE_NOT_FOUND"
    CONTAINER_FAILED = "CONTAINER_FAILED"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    CONTAINER_START_FAILED = "CONTAINER_START_FAILED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    CANCELLED = "CANCELLED"
    PARTIAL_FAILURE = "PARTIAL_FAILURE"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    AUTHENTICATION_FAILED = "AUTHENTICATION_FAILED"
    CLEANUP_FAILED = "CLEANUP_FAILED"
    TENANT_STATE_CONFLICT = "TENANT_STATE_CONFLICT"
    UNKNOWN_PROVIDER_ERROR = "UNKNOWN_PROVIDER_ERROR"

    @property
    def classification(self) -> Classification:
        """The catalog's classification (for ``PARTIAL_FAILURE``, the one with no units known)."""
        return CATALOG[self].classification


@dataclass(frozen=True)
class CatalogEntry:
    classification: Classification
    description: str


_R = Classification.RETRIABLE
_N = Classification.NON_RETRIABLE
_M = Classification.REQUIRES_MANUAL_INTERVENTION

CATALOG: Mapping[ErrorCode, CatalogEntry] = MappingProxyType(
    {
        ErrorCode.PROVIDER_TEMPORARILY_UNAVAILABLE: CatalogEntry(
            _R, "The provider's API failed on its side (HTTP 5xx, ServerException, etcd timeouts)."
        ),
        ErrorCode.PROVIDER_THROTTLED: CatalogEntry(
            _R, "The provider rate-limited the request (ThrottlingException, HTTP 429)."
        ),
        ErrorCode.PROVIDER_UNREACHABLE: CatalogEntry(
            _R, "The provider's API could not be reached (connection, DNS, TLS or read timeout)."
        ),
        ErrorCode.INSUFFICIENT_CAPACITY: CatalogEntry(
            _R, "No capacity to place the work right now (CPU, memory, ports, ENIs, Fargate capacity)."
        ),
        ErrorCode.INFRASTRUCTURE_INTERRUPTED: CatalogEntry(
            _R, "The host under the work went away (Spot interruption, node lost, eviction, preemption)."
        ),
        ErrorCode.IMAGE_PULL_FAILED: CatalogEntry(
            _R, "The image exists but could not be pulled now (timeouts, resets, registry rate limit)."
        ),
        ErrorCode.CONFLICT: CatalogEntry(
            _R, "A concurrent change or another execution got in the way; trying again may succeed."
        ),
        ErrorCode.OPERATION_TIMEOUT: CatalogEntry(
            _R, "The operation's own timeout passed; the provider-side work was left running."
        ),
        ErrorCode.QUOTA_EXCEEDED: CatalogEntry(
            _N, "A quota or service limit refuses the work until someone raises it."
        ),
        ErrorCode.INVALID_CONFIGURATION: CatalogEntry(
            _N, "The request itself is wrong (bad parameter, invalid spec, denied by admission)."
        ),
        ErrorCode.RESOURCE_NOT_FOUND: CatalogEntry(
            _N, "Something the request names does not exist (cluster, task definition, namespace)."
        ),
        ErrorCode.IMAGE_NOT_FOUND: CatalogEntry(
            _N, "The container image or tag does not exist in its registry."
        ),
        ErrorCode.CONTAINER_FAILED: CatalogEntry(
            _N, "An essential container exited with a non-zero code or failed its health checks."
        ),
        ErrorCode.OUT_OF_MEMORY: CatalogEntry(_N, "A container was killed for exceeding its memory limit."),
        ErrorCode.CONTAINER_START_FAILED: CatalogEntry(
            _N, "The runtime could not create or start a container."
        ),
        ErrorCode.DEADLINE_EXCEEDED: CatalogEntry(
            _N, "The provider killed the work for running longer than its deadline."
        ),
        ErrorCode.CANCELLED: CatalogEntry(
            _N, "Someone or something other than this operation stopped the work."
        ),
        ErrorCode.PARTIAL_FAILURE: CatalogEntry(
            _R, "Some units succeeded or run while others failed; classified as its most severe unit."
        ),
        ErrorCode.PERMISSION_DENIED: CatalogEntry(
            _M, "The caller is not allowed to do this (IAM, RBAC, registry access, secrets)."
        ),
        ErrorCode.AUTHENTICATION_FAILED: CatalogEntry(
            _M, "The provider did not accept the credentials (unknown, expired or badly signed)."
        ),
        ErrorCode.CLEANUP_FAILED: CatalogEntry(
            _M, "A rollback could not stop what it started; the resources are marked for cleanup."
        ),
        ErrorCode.TENANT_STATE_CONFLICT: CatalogEntry(
            _M, "The tenant is held for investigation and takes no new operations."
        ),
        ErrorCode.UNKNOWN_PROVIDER_ERROR: CatalogEntry(
            _M, "No rule recognises this failure; the raw response is in the debug log."
        ),
    }
)
