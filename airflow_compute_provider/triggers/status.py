"""``ComputeStatusTrigger``: waits in the triggerer until an operation's units settle.

The trigger is provider-agnostic: it rebuilds the backend from its plain config, receives unit
statuses, and asks ``progress.assess`` whether the operation is settled. It does not poll on its
own: every trigger of one triggerer that watches the same backend (connection and region /
cluster, or namespace) subscribes to one shared poller (``pollers.py``), which reads all their
units in batched calls (ECS) or keeps them current from one watch (Kubernetes,
``kube_watch.py``) and hands each trigger only its own units. It yields exactly one event and
stops:

    {"kind": "settled", "statuses": [...]}             every unit satisfied, or one failed
    {"kind": "timeout", "statuses": [...]}             the operation's deadline passed first
    {"kind": "error",   "statuses": [...], "error": e} status could not be read, for good

Events are masked in this process (``masking.py``): the trigger brings the launch request's
secret values with its arguments, since the triggerer never saw the worker's registered ones.
Every event also carries ``resume``, a plain dict the operator gave the trigger, so the task
resumes with everything it needs even where the event replaces the deferral's ``next_kwargs``
(``dag.test()`` does that).

It never raises: an exception from a trigger resumes the task as ``TaskDeferralError``, which
would skip the operator's failure handling, so every failure becomes an event. It never stops
the work it watches, not at the deadline and not when the triggerer restarts; only a user's
kill (``on_kill``, Airflow 3.3+) stops it, and only with ``on_kill_action="stop"``. Transient
status errors (throttling, 5xx, network) are already retried inside the hooks; one that still
escapes slows the shared poller down and only delays the next status, until the deadline. The
trigger leaves its poller before it yields, and when it is cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Hashable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_compute_provider import registry
from airflow_compute_provider.errors import ComputeError
from airflow_compute_provider.hooks.base import ComputeBackend, Unit, UnitStatus
from airflow_compute_provider.triggers import masking, pollers
from airflow_compute_provider.triggers.progress import (
    DEFAULT_PENDING_GRACE_PERIOD,
    Settlement,
    assess,
    pending_grace_ends,
)


class ComputeStatusTrigger(BaseTrigger):
    """Waits for the units of one compute operation to settle, or for its deadline."""

    def __init__(
        self,
        *,
        provider: str,
        backend_config: dict[str, Any],
        units: Sequence[dict[str, Any]],
        deadline: str,
        wait_for: str = "completion",
        poll_interval: float = 10.0,
        pending_grace_period: float = DEFAULT_PENDING_GRACE_PERIOD.total_seconds(),
        on_kill_action: str = "keep",
        resume: dict[str, Any] | None = None,
        secrets: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.provider = provider
        self.backend_config = dict(backend_config)
        self.units = [dict(u) for u in units]
        self.deadline = deadline
        self.wait_for = wait_for
        self.poll_interval = float(poll_interval)
        self.pending_grace_period = float(pending_grace_period)
        self.on_kill_action = on_kill_action
        self.resume = dict(resume or {})
        #: the launch request's secret values: this process masks them (``masking.py``)
        self.secrets = [str(s) for s in secrets]
        #: the newest statuses seen, for the event that ends the wait
        self._statuses: list[UnitStatus] = []

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "provider": self.provider,
                "backend_config": self.backend_config,
                "units": self.units,
                "deadline": self.deadline,
                "wait_for": self.wait_for,
                "poll_interval": self.poll_interval,
                "pending_grace_period": self.pending_grace_period,
                "on_kill_action": self.on_kill_action,
                "resume": self.resume,
                "secrets": self.secrets,  # Airflow stores trigger arguments encrypted
            },
        )

    def __repr__(self) -> str:
        # BaseTrigger's repr lists every argument: not the secrets
        return f"<{type(self).__qualname__} {self.provider} units={len(self.units)} deadline={self.deadline}>"

    def _backend(self) -> ComputeBackend:
        return registry.backend_from_config(self.provider, self.backend_config)

    def _units(self) -> list[Unit]:
        return [Unit.from_dict(u) for u in self.units]

    #: Kubernetes statuses from one watch per namespace (zero polls while nothing changes);
    #: ``False`` makes the shared poller list pods every interval instead (the registry's status
    #: source factories get it as ``watch``).
    kubernetes_watch: ClassVar[bool] = True

    def _poller_key(self) -> Hashable:
        return pollers.poller_key(self.provider, self.backend_config)

    def _source(self) -> pollers.StatusSource:
        """What the shared poller reads through; built once per poller, not per trigger."""
        backend = self._backend()
        push = registry.get(self.provider).push_source(
            backend, self.backend_config, poll_interval=self.poll_interval, watch=self.kubernetes_watch
        )
        return push or pollers.BackendSource(backend)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        self._statuses = []
        masking.remember(self.secrets)
        try:
            units = self._units()
            deadline = datetime.fromisoformat(self.deadline)
            async with pollers.subscribe(
                self._poller_key(), units, interval=self.poll_interval, source_factory=self._source
            ) as subscription:
                event = await self._wait(subscription, deadline)
            # Out of the poller before the event leaves: a triggerer may never resume us.
            yield event
        except Exception as exc:  # the last line of defence: a trigger must not raise
            from airflow_compute_provider.normalize import from_exception

            yield self._event("error", self._statuses, from_exception(exc))

    async def _wait(self, subscription: pollers.Subscription, deadline: datetime) -> TriggerEvent:
        """Judge every update for this trigger's units until one settles them, or the deadline."""
        grace = timedelta(seconds=self.pending_grace_period)
        final_look = False
        while True:
            remaining = (deadline - datetime.now(UTC)).total_seconds()
            if remaining > 0:
                # Unchanged statuses are not delivered again: wake for the deadline, or when a
                # pending unit's grace period runs out, whichever comes first.
                wake = min(remaining, self._grace_ends_in(grace))
                update = await subscription.next(timeout=wake)
                if update is None:
                    if wake >= remaining or not self._statuses:
                        continue  # the deadline came: take the final look below
                    update = pollers.Update(tuple(self._statuses))  # judge them again
            else:
                # As a poll at the deadline would: work that finished before we looked is
                # never reported as a timeout. Bounded, as a throttled poller may not answer.
                if not final_look:
                    final_look = True
                    subscription.refresh()
                update = await subscription.next(timeout=self.poll_interval)
                if update is None:
                    return self._event("timeout", self._statuses)
            now = datetime.now(UTC)
            if update.error is not None:
                if update.final:
                    return self._event("error", self._statuses, update.error)
                self.log.warning(
                    "status poll failed, will poll again: %s", masking.mask_text(update.error.message)
                )
            else:
                self._statuses = list(update.statuses)
                progress = assess(
                    self._statuses,
                    wait_for=self.wait_for,
                    now=now,
                    deadline=deadline,
                    pending_grace_period=grace,
                )
                if progress.state in (Settlement.SUCCEEDED, Settlement.FAILED):
                    return self._event("settled", self._statuses)
            if now >= deadline:
                return self._event("timeout", self._statuses)

    def _grace_ends_in(self, grace: timedelta) -> float:
        """Seconds until the first pending-with-an-error unit's grace period ends (inf: none)."""
        ends = pending_grace_ends(self._statuses, grace)
        if ends is None:
            return float("inf")
        return max(0.05, (ends - datetime.now(UTC)).total_seconds())

    def _event(
        self, kind: str, statuses: Sequence[UnitStatus], error: ComputeError | None = None
    ) -> TriggerEvent:
        payload: dict[str, Any] = {
            "kind": kind,
            "statuses": [s.to_dict() for s in statuses],
            "resume": self.resume,
        }
        if error is not None:
            payload["error"] = masking.mask_error(error).to_json_dict()
        # a unit's error in its status may echo a secret as well
        payload["statuses"] = masking.mask_payload(payload["statuses"])
        return TriggerEvent(payload)

    async def on_kill(self) -> None:
        """A user killed the deferred task: stop the units only if the DAG author asked for it."""
        if self.on_kill_action != "stop":
            return
        backend = self._backend()
        failed = await asyncio.to_thread(backend.stop, self._units(), "task killed by a user in Airflow")
        for unit, error in failed:
            self.log.warning("could not stop unit %s: %s", unit.resource_id, error.message)
