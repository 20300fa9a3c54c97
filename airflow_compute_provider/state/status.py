"""The statuses the state store knows and the moves between them, each as one table.

    TenantStatus        ready | operation_in_progress | retry_pending | needs_investigation
    TenantEvent         begin | finish | release | force_release
    TENANT_TRANSITIONS  (status, event) -> the statuses that event may lead to
    OperationStatus     in_progress | succeeded | failed | abandoned (one try of one execution)
    ResourceStatus      intended | launched | running | ... | cleaned (one ledger row)
    RESOURCE_TRANSITIONS status -> the statuses a ledger row may move to

A tenant move missing from its table raises ``IllegalTransitionError`` (``TenantNotFoundError``
for a tenant the store never saw; ``SupersededTryError`` for a write from a try that is no
longer the newest); a ledger move missing from its table is a stale observation
and is not applied (see ``resource_move_allowed``). Who may make a move (which execution holds
a tenant) is decided in ``rules.py``; these tables only say which moves exist.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType


class TenantStatus(enum.StrEnum):
    """Where a tenant stands between compute operations."""

    READY = "ready"
    OPERATION_IN_PROGRESS = "operation_in_progress"
    RETRY_PENDING = "retry_pending"
    NEEDS_INVESTIGATION = "needs_investigation"


class TenantEvent(enum.StrEnum):
    """What moves a tenant: the lifecycle begins and finishes tries, an operator releases."""

    BEGIN = "begin"
    FINISH = "finish"
    RELEASE = "release"
    #: an operator's release of a tenant still held by an execution that will never come back
    FORCE_RELEASE = "force_release"


class OperationStatus(enum.StrEnum):
    """One try (attempt) of one execution."""

    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    #: the try never reported an outcome (its worker died; a later try or a release replaced it)
    ABANDONED = "abandoned"


class ResourceStatus(enum.StrEnum):
    """One ledger row: one unit, one generation, from intent to cleanup."""

    INTENDED = "intended"
    LAUNCHED = "launched"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPING = "stopping"
    STOPPED = "stopped"
    PENDING_CLEANUP = "pending_cleanup"
    CLEANED = "cleaned"


class IllegalTransitionError(ValueError):
    """The store was asked for a move its tables forbid.

    A ``ValueError``, not a ``ComputeOperationError``: it reports a caller asking for something
    the lifecycle never should (finishing a tenant nobody began, releasing a ready tenant), not
    a compute failure, so retry policies must not read it as one. The refusals operators are
    meant to handle (``CONFLICT``, ``TENANT_STATE_CONFLICT``) are ``ComputeOperationError``.
    """

    def __init__(self, message: str, *, subject: str, current: str | None, requested: str) -> None:
        super().__init__(message)
        self.subject = subject
        self.current = current
        self.requested = requested


class SupersededTryError(IllegalTransitionError):
    """A write named a try that is no longer its execution's newest: refused, nothing written.

    The writer is a zombie (Airflow gave up on its try and began a newer one) or the older
    process of a double run (a second process began the same Airflow try and took it over).
    It must stop: whatever it would write belongs to the newer try now.
    """

    #: ``root_cause.reason`` of the CONFLICT the refused try's task fails with
    reason = "superseded_try"

    def __init__(self, message: str, *, subject: str, writer: str, newest: str, requested: str) -> None:
        super().__init__(message, subject=subject, current=newest, requested=requested)
        #: the refused try and the newest one, as ``TryRef`` prints them
        self.writer = writer
        self.newest = newest


class TryEndedError(SupersededTryError):
    """A try's outcome or finish, refused: its operation was already ended elsewhere (a
    reconciler run recorded the outcome of a try that looked dead, or a platform operator
    released its tenant). Like a superseded try, it must stop and change nothing more: its
    tenant and units are the maintenance run's business now."""

    reason = "try_ended"


class TenantNotFoundError(LookupError):
    """The store has never seen this tenant."""


_T = TenantStatus
_E = TenantEvent

TENANT_TRANSITIONS: Mapping[tuple[TenantStatus, TenantEvent], frozenset[TenantStatus]] = MappingProxyType(
    {
        (_T.READY, _E.BEGIN): frozenset({_T.OPERATION_IN_PROGRESS}),
        # The retry of the holding execution begins, or a new execution once the holder gave up.
        (_T.RETRY_PENDING, _E.BEGIN): frozenset({_T.OPERATION_IN_PROGRESS}),
        # The holder's next try after its previous try died without finishing.
        (_T.OPERATION_IN_PROGRESS, _E.BEGIN): frozenset({_T.OPERATION_IN_PROGRESS}),
        (_T.OPERATION_IN_PROGRESS, _E.FINISH): frozenset(
            {_T.READY, _T.RETRY_PENDING, _T.NEEDS_INVESTIGATION}
        ),
        # The story of a try that left the tenant retry_pending ends after the try did (its
        # timed-out work failed later, or the retry it waited for never came) with an error
        # that needs a human; no try is coming. Only the reconciler makes this move.
        (_T.RETRY_PENDING, _E.FINISH): frozenset({_T.NEEDS_INVESTIGATION}),
        # A try refused by its own argument validation, before any provider call, ends before
        # it began: its invalid configuration holds the tenant (requirement 2.2) from ready or
        # retry_pending (never from a try in progress: that one is its own try's to finish).
        (_T.READY, _E.FINISH): frozenset({_T.NEEDS_INVESTIGATION}),
        (_T.NEEDS_INVESTIGATION, _E.RELEASE): frozenset({_T.READY}),
        (_T.OPERATION_IN_PROGRESS, _E.FORCE_RELEASE): frozenset({_T.READY}),
        (_T.RETRY_PENDING, _E.FORCE_RELEASE): frozenset({_T.READY}),
        (_T.NEEDS_INVESTIGATION, _E.FORCE_RELEASE): frozenset({_T.READY}),
    }
)


def check_tenant_transition(
    tenant_id: str, current: TenantStatus, event: TenantEvent, target: TenantStatus
) -> None:
    """Raise ``IllegalTransitionError`` unless ``event`` may move ``current`` to ``target``."""
    allowed = TENANT_TRANSITIONS.get((current, event), frozenset())
    if target in allowed:
        return
    if allowed:
        expected = ", ".join(sorted(s.value for s in allowed))
        detail = f"{event.value} from {current.value} leads only to {expected}"
    else:
        possible = sorted(e.value for (s, e) in TENANT_TRANSITIONS if s is current)
        detail = f"a tenant in {current.value} accepts only: {', '.join(possible) or 'nothing'}"
    raise IllegalTransitionError(
        f"tenant {tenant_id!r}: cannot {event.value} from {current.value} to {target.value} ({detail})",
        subject=tenant_id,
        current=current.value,
        requested=target.value,
    )


_R = ResourceStatus
_STOPPABLE = frozenset({_R.STOPPING, _R.STOPPED, _R.PENDING_CLEANUP})
_SETTLED = frozenset({_R.PENDING_CLEANUP, _R.CLEANED})

#: Forward moves only: a stale status poll must not turn a succeeded unit back into a running
#: one. Polls may skip states (a unit seen first when it already ran), so later states are open.
RESOURCE_TRANSITIONS: Mapping[ResourceStatus, frozenset[ResourceStatus]] = MappingProxyType(
    {
        _R.INTENDED: frozenset({_R.LAUNCHED, _R.RUNNING, _R.SUCCEEDED, _R.FAILED}) | _STOPPABLE,
        _R.LAUNCHED: frozenset({_R.RUNNING, _R.SUCCEEDED, _R.FAILED}) | _STOPPABLE,
        _R.RUNNING: frozenset({_R.SUCCEEDED, _R.FAILED}) | _STOPPABLE,
        _R.STOPPING: frozenset({_R.STOPPED, _R.SUCCEEDED, _R.FAILED, _R.PENDING_CLEANUP}),
        _R.SUCCEEDED: _SETTLED,
        _R.FAILED: _SETTLED | {_R.STOPPED},
        _R.STOPPED: _SETTLED,
        _R.PENDING_CLEANUP: frozenset({_R.STOPPING, _R.STOPPED, _R.CLEANED}),
        _R.CLEANED: frozenset(),
    }
)


def resource_move_allowed(current: ResourceStatus, target: ResourceStatus) -> bool:
    """Whether a ledger row at ``current`` takes ``target``.

    Staying in the same status is always allowed (a poll refreshes the resource id or error).
    A move the table lacks is a stale observation (an older poll, or a second report of an end
    already recorded): the store keeps what it has rather than rewrite a unit's history.
    """
    return target is current or target in RESOURCE_TRANSITIONS[current]
