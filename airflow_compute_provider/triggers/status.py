"""``ComputeStatusTrigger``: waits in the triggerer until an operation's units settle.

The trigger is provider-agnostic: it rebuilds the backend from its plain config, polls unit
statuses, and asks ``progress.assess`` whether the operation is settled. It yields exactly one
event and stops:

    {"kind": "settled", "statuses": [...]}             every unit satisfied, or one failed
    {"kind": "timeout", "statuses": [...]}             the operation's deadline passed first
    {"kind": "error",   "statuses": [...], "error": e} status could not be read, for good

Every event also carries ``resume``, a plain dict the operator gave the trigger, so the task
resumes with everything it needs even where the event replaces the deferral's ``next_kwargs``
(``dag.test()`` does that).

It never raises: an exception from a trigger resumes the task as ``TaskDeferralError``, which
would skip the operator's failure handling, so every failure becomes an event. It never stops
the work it watches, not at the deadline and not when the triggerer restarts; only a user's
kill (``on_kill``, Airflow 3.3+) stops it, and only with ``on_kill_action="stop"``. Transient
status errors (throttling, 5xx, network) are already retried inside the hooks; one that still
escapes only delays the next poll, until the deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_compute_provider.errors import Classification, ComputeError, ComputeOperationError
from airflow_compute_provider.hooks.base import ComputeBackend, Unit, UnitStatus, backend_from_config
from airflow_compute_provider.triggers.progress import Settlement, assess

_MAX_BACKOFF_SECONDS = 60.0


class ComputeStatusTrigger(BaseTrigger):
    """Polls the units of one compute operation until they settle or its deadline passes."""

    def __init__(
        self,
        *,
        provider: str,
        backend_config: dict[str, Any],
        units: Sequence[dict[str, Any]],
        deadline: str,
        wait_for: str = "completion",
        poll_interval: float = 10.0,
        pending_grace_period: float = 300.0,
        on_kill_action: str = "keep",
        resume: dict[str, Any] | None = None,
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
            },
        )

    def _backend(self) -> ComputeBackend:
        return backend_from_config(self.provider, self.backend_config)

    def _units(self) -> list[Unit]:
        return [Unit.from_dict(u) for u in self.units]

    async def run(self) -> AsyncIterator[TriggerEvent]:
        statuses: list[UnitStatus] = []
        try:
            backend = self._backend()
            units = self._units()
            deadline = datetime.fromisoformat(self.deadline)
            grace = timedelta(seconds=self.pending_grace_period)
            backoff = self.poll_interval
            while True:
                now = datetime.now(UTC)
                try:
                    statuses = await backend.adescribe(units)
                    backoff = self.poll_interval
                except ComputeOperationError as exc:
                    if exc.error.classification is not Classification.RETRIABLE:
                        yield self._event("error", statuses, exc.error)
                        return
                    self.log.warning("status poll failed, will poll again: %s", exc)
                    backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
                else:
                    progress = assess(
                        statuses,
                        wait_for=self.wait_for,
                        now=now,
                        deadline=deadline,
                        pending_grace_period=grace,
                    )
                    if progress.state in (Settlement.SUCCEEDED, Settlement.FAILED):
                        yield self._event("settled", statuses)
                        return
                if now >= deadline:
                    yield self._event("timeout", statuses)
                    return
                remaining = (deadline - datetime.now(UTC)).total_seconds()
                await asyncio.sleep(max(0.0, min(backoff, remaining)))
        except Exception as exc:  # the last line of defence: a trigger must not raise
            from airflow_compute_provider.normalize import from_exception

            yield self._event("error", statuses, from_exception(exc))

    def _event(
        self, kind: str, statuses: Sequence[UnitStatus], error: ComputeError | None = None
    ) -> TriggerEvent:
        payload: dict[str, Any] = {
            "kind": kind,
            "statuses": [s.to_dict() for s in statuses],
            "resume": self.resume,
        }
        if error is not None:
            payload["error"] = error.to_json_dict()
        return TriggerEvent(payload)

    async def on_kill(self) -> None:
        """A user killed the deferred task: stop the units only if the DAG author asked for it."""
        if self.on_kill_action != "stop":
            return
        backend = self._backend()
        failed = await asyncio.to_thread(backend.stop, self._units(), "task killed by a user in Airflow")
        for unit, error in failed:
            self.log.warning("could not stop unit %s: %s", unit.resource_id, error.message)
