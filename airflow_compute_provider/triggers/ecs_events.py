"""ECS task completion from events: an SQS queue of "ECS Task State Change" events that the
shared ECS poller long-polls, with DescribeTasks as the slow fallback.

ECS sends an event to EventBridge whenever a task changes state; a rule on the cluster's task
state changes delivers them to an SQS queue (docs/scaling.md creates both). Its ``detail`` is
the task as DescribeTasks shows it, plus ``version``, which ECS increments on every state change
and repeats on a duplicate (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_cwe_events.html).
The pieces:

    queue_for(cluster)     the queue configured for a cluster: Airflow config
                           ``[compute] ecs_events_queues``, a JSON object {cluster: queue URL}
    parse_event(body)      an SQS message body -> ``TaskEvent`` (None: not a task state change)
    TaskLedger             the newest known state of each watched task; an event applies only
                           when it is newer than what is known (``version``), so duplicated and
                           out-of-order events change nothing, and a stopped task never comes
                           back to life
    EcsEventsSource        the shared poller's ``StatusSource``: answers from the ledger; reads
                           through DescribeTasks (the hook's ``adescribe``) the units it has no
                           state for (newcomers, units whose events were lost) and, every
                           ``fallback_seconds``, every unit; a task that must be read anyway
                           (its task definition's essential containers are unknown) too

The consumer (one asyncio task per source) receives up to 10 messages per long poll (20 s);
while answers come full (a backlog: many tasks finishing at once) it starts helpers, up to
``MAX_RECEIVERS`` receives in flight, that stop at the first answer that is not full. It applies
each message, and deletes a message only once it was applied, judged stale or duplicate, or
found foreign (another cluster, another event type, unreadable): a message whose apply failed
stays, and SQS delivers it again after its visibility timeout. Events of tasks no trigger of
this poller watches are deleted too: a queue serves one triggerer (give each triggerer its own
queue, a rule may target several); a unit that subscribes later is read through DescribeTasks
first. When the queue cannot be read (unreachable, missing, denied: two receives in a row
failed), the source says so once in the log and falls back to reading every unit every
interval; it says so again once it recovers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_compute_provider.hooks import ecs_status
from airflow_compute_provider.hooks.base import Unit, UnitStatus

log = logging.getLogger(__name__)

DETAIL_TYPE = "ECS Task State Change"
#: SQS's longest long poll: one ReceiveMessage per 20 s while nothing happens
WAIT_SECONDS = 20
MAX_MESSAGES = 10
#: how often every unit is read through DescribeTasks anyway, in poll intervals
FALLBACK_INTERVALS = 10
#: receivers at most while the queue has a backlog (full batches): one long poll while quiet
MAX_RECEIVERS = 4
#: receives failed in a row before the source falls back to polling: one 500 is retried, not
#: answered with a DescribeTasks of every unit
FAILURES_BEFORE_FALLBACK = 2
#: after a failed receive, wait this long before the next try (doubling, up to the cap)
RETRY_SECONDS = 1.0
MAX_RETRY_SECONDS = 60.0


def queue_for(cluster: str) -> str | None:
    """The events queue of ``cluster`` (its name or ARN), from ``[compute] ecs_events_queues``."""
    try:
        from airflow.configuration import conf

        raw = conf.get("compute", "ecs_events_queues", fallback="") or ""
    except Exception:  # no Airflow configuration at all: no queue
        return None
    if not raw.strip():
        return None
    try:
        queues = json.loads(raw)
    except ValueError:
        log.error("[compute] ecs_events_queues is not JSON; ECS completion is polled")
        return None
    if not isinstance(queues, dict):
        log.error("[compute] ecs_events_queues must be a JSON object {cluster: queue URL}")
        return None
    name = cluster.rsplit("/", 1)[-1]
    found = queues.get(cluster) or queues.get(name)
    return str(found) if found else None


def status_source(
    backend: Any, config: Mapping[str, Any], *, poll_interval: float, watch: bool = True
) -> EcsEventsSource | None:
    """The registry's status source of ECS: the events of the cluster's queue, when
    ``[compute] ecs_events_queues`` names one (``watch`` concerns Kubernetes only); else ``None``,
    and the shared poller polls DescribeTasks."""
    queue = queue_for(str(config.get("cluster") or ""))
    if not queue:
        return None
    return EcsEventsSource(backend, queue, fallback_seconds=FALLBACK_INTERVALS * poll_interval)


@dataclass(frozen=True)
class TaskEvent:
    task_arn: str
    cluster: str  # the cluster's name
    version: int | None
    task: Mapping[str, Any]


def parse_event(body: str) -> TaskEvent | None:
    """A task state change event, or ``None`` for anything else (foreign or unreadable)."""
    try:
        event = json.loads(body)
    except ValueError:
        return None
    if (
        not isinstance(event, dict)
        or event.get("detail-type") != DETAIL_TYPE
        or event.get("source") != "aws.ecs"
    ):
        return None
    detail = event.get("detail")
    if not isinstance(detail, dict):
        return None
    task_arn = detail.get("taskArn")
    cluster_arn = detail.get("clusterArn")
    if not isinstance(task_arn, str) or not isinstance(cluster_arn, str) or not detail.get("lastStatus"):
        return None
    version = detail.get("version")
    return TaskEvent(
        task_arn=task_arn,
        cluster=cluster_arn.rsplit("/", 1)[-1],
        version=version if isinstance(version, int) and not isinstance(version, bool) else None,
        task=detail,
    )


@dataclass
class _Known:
    version: int | None
    task: Mapping[str, Any]


@dataclass
class TaskLedger:
    """The newest state known of each task, from events and reads alike."""

    known: dict[str, _Known] = field(default_factory=dict)

    def newer(self, task_arn: str, version: int | None, task: Mapping[str, Any]) -> bool:
        """Whether ``task`` (at ``version``) is news for ``task_arn``."""
        current = self.known.get(task_arn)
        if current is None:
            return True
        if version is not None and current.version is not None:
            return version > current.version
        # Without versions to compare, a stopped task stays stopped.
        return not (ecs_status.is_stopped(current.task) and not ecs_status.is_stopped(task))

    def record(self, task_arn: str, version: int | None, task: Mapping[str, Any]) -> bool:
        if not self.newer(task_arn, version, task):
            return False
        self.known[task_arn] = _Known(version, task)
        return True

    def forget_except(self, task_arns: set[str]) -> None:
        for arn in [a for a in self.known if a not in task_arns]:
            del self.known[arn]


@dataclass
class EventStats:
    receives: int = 0
    received: int = 0
    applied: int = 0
    stale: int = 0
    foreign: int = 0
    unwatched: int = 0
    deleted: int = 0
    failed_receives: int = 0
    kept: int = 0  # messages left in the queue because they could not be applied yet
    describe_reads: int = 0
    units_described: int = 0


class EcsEventsSource:
    """A ``StatusSource`` for the shared ECS poller: events first, DescribeTasks as fallback."""

    def __init__(
        self,
        backend: Any,
        queue_url: str,
        *,
        fallback_seconds: float,
        sqs_client_factory: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wait_seconds: int = WAIT_SECONDS,
    ) -> None:
        self.backend = backend  # an EcsComputeHook: adescribe, cluster, aws_conn_id, region
        self.queue_url = queue_url
        self.fallback_seconds = fallback_seconds
        self.ledger = TaskLedger()
        self.stats = EventStats()
        self.queue_healthy = True
        self._sqs_client_factory = sqs_client_factory or self._default_sqs_client
        self._clock = clock
        self._wait_seconds = wait_seconds
        self._watched: set[str] = set()
        self._failures_in_a_row = 0
        # Each unit's status, with the ledger entry it was computed from: a round that follows an
        # event recomputes only the units whose task changed, not all 10,000.
        self._computed: dict[tuple[str, int, int], tuple[_Known, UnitStatus]] = {}
        self._next_fallback = clock() + fallback_seconds
        self._changed: Callable[[], None] = lambda: None
        self._consumer: asyncio.Task[None] | None = None
        self._cluster = str(backend.cluster).rsplit("/", 1)[-1]

    # -- StatusSource -----------------------------------------------------------------------------

    def start(self, changed: Callable[[], None]) -> None:
        self._changed = changed
        self._consumer = asyncio.get_running_loop().create_task(
            self._consume(), name=f"ecs-events {self.queue_url}"
        )

    async def aclose(self) -> None:
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._consumer

    async def describe(self, units: Sequence[Unit]) -> list[UnitStatus]:
        now = self._clock()
        self._watched.update(u.resource_id for u in units)
        everything = not self.queue_healthy or now >= self._next_fallback
        if everything and now >= self._next_fallback:
            self._next_fallback = now + self.fallback_seconds
            # A full read also tells which tasks are still watched: forget the others.
            self._watched = {u.resource_id for u in units}
            self.ledger.forget_except(self._watched)
            self._computed = {k: v for k, v in self._computed.items() if k[0] in self._watched}
        answers: dict[int, UnitStatus] = {}
        to_read: list[tuple[int, Unit]] = []
        for position, unit in enumerate(units):
            known = None if everything else self.ledger.known.get(unit.resource_id)
            status = self._status_known(unit, known) if known is not None else None
            if status is None:
                to_read.append((position, unit))
            else:
                answers[position] = status
        if to_read:
            read, tasks = await self.backend.adescribe_tasks([u for _, u in to_read])
            self.stats.describe_reads += 1
            self.stats.units_described += len(to_read)
            for arn, task in tasks.items():
                # What a read saw is known state too: an older event arriving later is stale.
                version = task.get("version")
                self.ledger.record(arn, version if isinstance(version, int) else None, task)
            for (position, _unit), status in zip(to_read, read, strict=True):
                answers[position] = status
        return [answers[i] for i in range(len(units))]

    def _status_known(self, unit: Unit, known: _Known) -> UnitStatus | None:
        key = (unit.resource_id, unit.index, unit.generation)
        computed = self._computed.get(key)
        if computed is not None and computed[0] is known:
            return computed[1]
        status = self._status_from(unit, known.task)
        if status is not None:
            self._computed[key] = (known, status)
        return status

    def _status_from(self, unit: Unit, task: Mapping[str, Any]) -> UnitStatus | None:
        """The unit's status from its known task, or None when it must be read instead: a
        stopped task whose task definition's essential containers are not known yet."""
        essential = None
        if ecs_status.needs_task_definition(task):
            essential = self._essentials_known(str(task.get("taskDefinitionArn")))
            if essential is None:
                return None
        return ecs_status.status_of(unit, task, essential)

    @staticmethod
    def _essentials_known(task_definition_arn: str) -> frozenset[str] | None:
        from airflow_compute_provider.hooks.ecs import _essentials_cache

        return _essentials_cache.get(task_definition_arn)

    # -- the consumer -----------------------------------------------------------------------------

    def _default_sqs_client(self) -> Any:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        return AwsBaseHook(
            aws_conn_id=self.backend.aws_conn_id, region_name=self.backend.region_name, client_type="sqs"
        )

    async def _consume(self) -> None:
        retry = RETRY_SECONDS
        while True:
            try:
                hook = self._sqs_client_factory()
                async with await hook.get_async_conn() as sqs:
                    helpers: set[asyncio.Task[None]] = set()
                    try:
                        while True:
                            full = await self._receive_once(sqs, self._wait_seconds)
                            retry = RETRY_SECONDS
                            if full and len(helpers) < MAX_RECEIVERS - 1:
                                helper = asyncio.create_task(self._drain(sqs))
                                helpers.add(helper)
                                helper.add_done_callback(helpers.discard)
                    finally:
                        for helper in list(helpers):
                            helper.cancel()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.failed_receives += 1
                self._failures_in_a_row += 1
                if self.queue_healthy and self._failures_in_a_row >= FAILURES_BEFORE_FALLBACK:
                    self.queue_healthy = False
                    log.warning(
                        "ECS events queue %s cannot be read (%s); falling back to DescribeTasks "
                        "every poll interval until it can",
                        self.queue_url,
                        _reason(exc),
                    )
                    self._changed()
                await asyncio.sleep(retry)
                retry = min(retry * 2, MAX_RETRY_SECONDS)

    async def _drain(self, sqs: Any) -> None:
        """A helper while there is a backlog: short polls until an answer is not full."""
        with contextlib.suppress(Exception):
            while await self._receive_once(sqs, 0):
                pass

    async def _receive_once(self, sqs: Any, wait_seconds: int) -> bool:
        """One receive, applied and deleted; whether the answer was full (a backlog)."""
        self.stats.receives += 1
        response = await sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=MAX_MESSAGES,
            WaitTimeSeconds=wait_seconds,
        )
        self._failures_in_a_row = 0
        if not self.queue_healthy:
            self.queue_healthy = True
            log.warning(
                "ECS events queue %s can be read again; DescribeTasks back to its fallback pace",
                self.queue_url,
            )
        messages = response.get("Messages") or []
        self.stats.received += len(messages)
        done: list[dict[str, str]] = []
        news = False
        for message in messages:
            outcome = await self._apply(message.get("Body") or "")
            if outcome is None:
                self.stats.kept += 1
                continue  # not applied: leave it for SQS to deliver again
            news = news or outcome
            done.append({"Id": str(len(done)), "ReceiptHandle": message["ReceiptHandle"]})
        if news:
            self._changed()
        if done:
            # Deleted only now, after applying: a crash before this line means redelivery, which
            # the ledger's versions make harmless.
            answer = await sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=done)
            self.stats.deleted += len(answer.get("Successful") or [])
        return len(messages) >= MAX_MESSAGES

    async def _apply(self, body: str) -> bool | None:
        """True: news applied; False: nothing to apply (foreign, stale, unwatched); None: not
        applied yet (keep the message)."""
        event = parse_event(body)
        if event is None or event.cluster != self._cluster:
            self.stats.foreign += 1
            return False
        if event.task_arn not in self._watched:
            self.stats.unwatched += 1
            return False
        if not self.ledger.newer(event.task_arn, event.version, event.task):
            self.stats.stale += 1
            return False
        if ecs_status.needs_task_definition(event.task):
            td_arn = str(event.task.get("taskDefinitionArn"))
            if self._essentials_known(td_arn) is None:
                try:
                    await self.backend.aessentials(td_arn)
                except Exception as exc:
                    log.info(
                        "Could not read task definition %s for an ECS event yet: %s", td_arn, _reason(exc)
                    )
                    return None
                if self._essentials_known(td_arn) is None:
                    return None
        self.ledger.record(event.task_arn, event.version, event.task)
        self.stats.applied += 1
        return True


def _reason(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        if error.get("Code"):
            return f"{error.get('Code')}: {error.get('Message') or ''}".strip()
    return f"{type(exc).__name__}: {exc}"
