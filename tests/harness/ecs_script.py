"""Scripted ECS task outcomes, played by the in-process moto server.

moto's ECS is a good API surface but a poor simulation: tasks are born RUNNING and drift to
STOPPED with exit code 0 a step per DescribeTasks, ``clientToken`` is ignored, RunTask never
returns ``failures[]``, and a few error paths answer HTTP 500. This module makes moto answer the
way ECS does, with outcomes a test chooses. The pieces:

    TaskOutcome    how a task ends: stopCode, stoppedReason, the exit code and reason of the
                   container that decided it (presets: ``OOM_KILLED``, ``exited(1)``, ...)
    TaskScript     a task's life as DescribeTasks reports it: how many describes see
                   PROVISIONING, PENDING, RUNNING and DEACTIVATING, then STOPPED with an outcome
    RunTaskScript  what one RunTask call answers: ``failures[]`` entries, fewer tasks launched
    EcsScripter    the per-test state: rules choosing a script for each new task, queued RunTask
                   answers, clientToken memory; ``install_moto_patches`` wires it into moto
    task_state_change_event(...)   the EventBridge document ECS sends when a task changes
                   state; ``EcsScripter.event_sink`` (when set) receives one per change

Progression is counted in DescribeTasks calls, never in wall-clock time, so a test (or a trigger
polling through the product) sees the same sequence every run. The RunTask response shows
PROVISIONING; describe number k shows the phase the script places there.

What the patched moto does in addition (each mirrors real ECS):
  * ``clientToken``: the same token with the same parameters returns the original tasks, with
    different parameters a ``ConflictException`` whose ``resourceIds`` are the original tasks;
  * EC2 launch type on a cluster without container instances: ``InvalidParameterException``
    "No Container Instances were found in your cluster." instead of an HTTP 500;
  * DescribeTasks lists unknown ARNs under ``failures[]`` with reason ``MISSING``, and no longer
    shares its include=TAGS switch between concurrent requests;
  * ListTasks without ``desiredStatus`` lists only tasks whose desired status is RUNNING;
  * StopTask: desiredStatus STOPPED at once, DEACTIVATING for one describe, then STOPPED with
    stopCode ``UserInitiated``, the given reason and exit code 143 (SIGTERM); an unknown task is
    ``InvalidParameterException`` "The referenced task was not found.";
  * every change of a task's lastStatus or desiredStatus bumps its ``version`` (DescribeTasks
    shows it) and, with an ``event_sink``, sends an "ECS Task State Change" event shaped as AWS
    documents it (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_task_events.html;
    ecs_cwe_events.html for ``detail.version``: incremented whenever the task changes state,
    a duplicate carries the same version);
  * a script's ``output`` is what the task's deciding container prints: written as log events
    to CloudWatch Logs (moto's) in the stream its task definition's ``awslogs`` configuration
    names, ``<awslogs-stream-prefix>/<container>/<task id>`` in ``awslogs-group`` (AWS ECS
    developer guide, "Using the awslogs log driver"), as the awslogs driver does: the stream is
    created on the first line, never the group (absent, the lines are lost, as ECS loses them);
    one line per describe that shows the task RUNNING, the rest once it stopped; none for a
    task that never started;
  * every container of the task definition appears in the task (moto models only the first),
    ``exitCode`` only once a container stopped, timestamps as ECS sets them: ``startedAt`` at
    the describe that first shows the task RUNNING (or past it) and kept from then on, never
    for a task that did not start (stopped while still pending, or TaskFailedToStart).
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

# -- what a test writes ---------------------------------------------------------------------

SIGTERM_EXIT_CODE = 143


@dataclass(frozen=True)
class TaskOutcome:
    """How a task stops. ``container`` names the container carrying ``exit_code`` / ``reason``;
    by default the first essential one. The other containers stop with ``others_exit_code``."""

    stop_code: str = "EssentialContainerExited"
    stopped_reason: str = "Essential container in task exited"
    exit_code: int | None = 0
    container_reason: str | None = None
    container: str | None = None
    others_exit_code: int | None = 0


SUCCEEDED = TaskOutcome()
OOM_KILLED = TaskOutcome(
    exit_code=137,
    container_reason="OutOfMemoryError: Container killed due to memory usage",
)
SPOT_INTERRUPTED = TaskOutcome(
    stop_code="SpotInterruption",
    stopped_reason="Your Spot Task was interrupted.",
    exit_code=None,
    others_exit_code=None,
)
TERMINATION_NOTICE = TaskOutcome(
    stop_code="TerminationNotice",
    stopped_reason="Task stopped because the underlying host was terminated.",
    exit_code=None,
    others_exit_code=None,
)
SERVICE_SCHEDULER_STOPPED = TaskOutcome(
    stop_code="ServiceSchedulerInitiated",
    stopped_reason="Scaling activity initiated by (deployment ecs-svc/1234567890)",
    exit_code=SIGTERM_EXIT_CODE,
    others_exit_code=SIGTERM_EXIT_CODE,
)


def exited(exit_code: int, container_reason: str | None = None) -> TaskOutcome:
    """The essential container exited by itself with this code."""
    return TaskOutcome(exit_code=exit_code, container_reason=container_reason)


def image_not_found(image: str = "registry.example/no-such-image:latest") -> TaskOutcome:
    reason = (
        "CannotPullContainerError: pull image manifest has been retried 1 time(s): "
        f"failed to resolve ref {image}: {image}: not found"
    )
    return TaskOutcome(
        stop_code="TaskFailedToStart",
        stopped_reason=reason,
        exit_code=None,
        container_reason=reason,
        others_exit_code=None,
    )


def user_stopped(reason: str = "Task stopped by user") -> TaskOutcome:
    return TaskOutcome(
        stop_code="UserInitiated",
        stopped_reason=reason,
        exit_code=SIGTERM_EXIT_CODE,
        others_exit_code=SIGTERM_EXIT_CODE,
    )


@dataclass(frozen=True)
class TaskScript:
    """Describes seeing each phase, in order; ``None`` keeps the task in that phase for good."""

    provisioning: int | None = 0
    pending: int | None = 1
    running: int | None = 1
    stopping: int | None = 0
    outcome: TaskOutcome = SUCCEEDED
    #: the lines the deciding container prints (CloudWatch Logs, through its awslogs config)
    output: tuple[str, ...] = ()


RUNS_FOREVER = TaskScript(running=None)
HOLD_PENDING = TaskScript(pending=None)


@dataclass(frozen=True)
class RunTaskScript:
    """A RunTask answer: these ``failures[]`` entries, and ``count - len(failures)`` tasks
    launched (never fewer than zero), unless ``launch`` says how many. It answers the next
    ``times`` calls (None: all) whose request body ``where`` accepts (None: any)."""

    failures: tuple[Mapping[str, str], ...] = ()
    launch: int | None = None
    where: Callable[[Mapping[str, Any]], bool] | None = None
    times: int | None = 1


@dataclass(frozen=True)
class TaskInfo:
    """What a rule may look at to pick a script for a new task."""

    task_arn: str
    started_by: str
    tags: Mapping[str, str]
    group: str
    task_definition_arn: str
    launch_index: int  # 0 for the first task launched in this test, then 1, ...


TaskMatcher = Callable[[TaskInfo], bool]


# -- how a script plays out -----------------------------------------------------------------


@dataclass(frozen=True)
class _Phase:
    last_status: str
    desired_status: str
    describes: int | None  # None: forever


@dataclass
class _Timeline:
    """Phases in order. ``current()`` is what DescribeTasks shows after ``describes_seen``
    describes since (re)scripting: ``initial`` before the first one (the RunTask / StopTask
    answer), then each phase for its count of describes, the last one for good."""

    initial: _Phase
    phases: list[_Phase]
    outcome: TaskOutcome
    describes_seen: int = 0
    output: tuple[str, ...] = ()

    def current(self) -> _Phase:
        if self.describes_seen == 0:
            return self.initial
        remaining = self.describes_seen
        for phase in self.phases:
            if phase.describes is None or remaining <= phase.describes:
                return phase
            remaining -= phase.describes
        return self.phases[-1]


def _timeline(script: TaskScript, initial: str | None) -> _Timeline:
    phases = [
        _Phase("PROVISIONING", "RUNNING", script.provisioning),
        _Phase("PENDING", "RUNNING", script.pending),
        _Phase("RUNNING", "RUNNING", script.running),
        _Phase("DEACTIVATING", "STOPPED", script.stopping),
        _Phase("STOPPED", "STOPPED", None),
    ]
    # A phase seen zero times is skipped; truncate after the first phase that lasts forever.
    kept: list[_Phase] = []
    for phase in phases:
        if phase.describes == 0:
            continue
        kept.append(phase)
        if phase.describes is None:
            break
    # A rescripted task shows its first phase at once; a new one answers RunTask with `initial`.
    start = _Phase(initial, "RUNNING", 0) if initial else kept[0]
    return _Timeline(initial=start, phases=kept, outcome=script.outcome, output=script.output)


@dataclass
class _Container:
    moto: Any
    essential: bool
    log_configuration: Mapping[str, Any] | None = None


@dataclass
class _ScriptedTask:
    moto: Any
    containers: list[_Container]
    timeline: _Timeline
    created_at: datetime
    stamps: dict[str, datetime] = field(default_factory=dict)
    #: stopped before it ever reached RUNNING: ECS gives such a task no startedAt
    never_started: bool = False
    #: ECS's task version: bumped on every state change, as its events carry it
    version: int = 0
    emitted: tuple[str, str] | None = None
    on_change: Callable[[_ScriptedTask], None] | None = None
    #: how many of the script's output lines were written to CloudWatch Logs
    printed: int = 0

    def apply(self) -> None:
        """Write the current phase onto moto's task object, which moto then serializes."""
        phase = self.timeline.current()
        task = self.moto
        task.last_status = phase.last_status
        task.desired_status = phase.desired_status
        task.created_at = self.created_at
        status = phase.last_status
        now = datetime.now(UTC)
        if status in ("PENDING", "RUNNING", "DEACTIVATING", "STOPPED"):
            self.stamps.setdefault("pull_started_at", now)
        if status in ("RUNNING", "DEACTIVATING", "STOPPED"):
            self.stamps.setdefault("pull_stopped_at", now)
            # startedAt: "the time when the task transitioned from the PENDING state to the
            # RUNNING state" (AWS ECS API reference, Task data type; botocore's ecs model says
            # the same). Set once, so every later describe shows the same start.
            if self.timeline.outcome.stop_code != "TaskFailedToStart" and not self.never_started:
                self.stamps.setdefault("started_at", now)
        stopping = phase.desired_status == "STOPPED"
        if stopping:
            self.stamps.setdefault("stopping_at", now)
            task.stop_code = self.timeline.outcome.stop_code
            task.stopped_reason = self.timeline.outcome.stopped_reason
        else:
            task.stop_code = None
            task.stopped_reason = None
        if status == "STOPPED":
            self.stamps.setdefault("execution_stopped_at", now)
            self.stamps.setdefault("stopped_at", now)
        for name, value in self.stamps.items():
            setattr(task, name, value)
        self._apply_containers(status, stopped=status in ("DEACTIVATING", "STOPPED"))
        if "started_at" in self.stamps and status in ("RUNNING", "DEACTIVATING", "STOPPED"):
            lines = self.timeline.output[self.printed :]
            self._print(lines if status != "RUNNING" else lines[:1])
        state = (phase.last_status, phase.desired_status)
        if state != self.emitted:
            self.emitted = state
            self.version += 1
            task.version = self.version
            if self.on_change is not None:
                self.on_change(self)

    def _apply_containers(self, status: str, stopped: bool) -> None:
        outcome = self.timeline.outcome
        deciding = self._deciding_container(outcome)
        for container in self.containers:
            moto = container.moto
            if not stopped:
                moto.last_status = "RUNNING" if status == "RUNNING" else "PENDING"
                moto.exitCode = None
                moto.reason = None
                continue
            moto.last_status = "STOPPED"
            if container is deciding:
                moto.exitCode = outcome.exit_code
                moto.reason = outcome.container_reason
            else:
                moto.exitCode = outcome.others_exit_code
                moto.reason = None

    def _print(self, lines: Sequence[str]) -> None:
        """Write ``lines`` as the deciding container's log events, where its awslogs config says."""
        if not lines:
            return
        self.printed += len(lines)
        container = self._deciding_container(self.timeline.outcome)
        config = container.log_configuration or {}
        options = config.get("options") or {}
        if config.get("logDriver") != "awslogs" or "awslogs-group" not in options:
            return  # no awslogs configuration: the output goes nowhere CloudWatch can show
        from moto.backends import get_backend

        task_id = self.moto.task_arn.rsplit("/", 1)[-1]
        group = options["awslogs-group"]
        stream = f"{options.get('awslogs-stream-prefix')}/{container.moto.name}/{task_id}"
        region = options.get("awslogs-region") or self.moto.region_name
        logs = get_backend("logs")[self.moto._account_id][region]
        if group not in logs.groups:
            return  # the awslogs driver does not create the group (awslogs-create-group unset)
        if stream not in logs.groups[group].streams:
            logs.create_log_stream(group, stream)
        now = int(datetime.now(UTC).timestamp() * 1000)
        events = [{"timestamp": now + i, "message": line} for i, line in enumerate(lines)]
        logs.put_log_events(group, stream, events)

    def _deciding_container(self, outcome: TaskOutcome) -> _Container:
        for container in self.containers:
            if outcome.container is not None and container.moto.name == outcome.container:
                return container
        if outcome.container is not None:
            raise ValueError(f"task has no container named {outcome.container!r}")
        return next((c for c in self.containers if c.essential), self.containers[0])


def _event_time(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def task_state_change_event(scripted: _ScriptedTask) -> dict[str, Any]:
    """The "ECS Task State Change" event of the task as it is now, as EventBridge delivers it:
    the envelope (version "0", id, detail-type, source aws.ecs, account, time, region,
    resources [task ARN]) and ``detail``, the task in the shape DescribeTasks gives it, with
    ISO 8601 timestamps and the task's ``version``."""
    task = scripted.moto
    containers = []
    for container in scripted.containers:
        moto = container.moto
        entry: dict[str, Any] = {
            "containerArn": getattr(moto, "container_arn", None),
            "lastStatus": moto.last_status,
            "name": moto.name,
            "taskArn": task.task_arn,
            "exitCode": getattr(moto, "exitCode", None),
            "reason": getattr(moto, "reason", None) or None,
        }
        containers.append({k: v for k, v in entry.items() if v is not None})
    detail: dict[str, Any] = {
        "attachments": [],
        "clusterArn": task.cluster_arn,
        "containers": containers,
        "createdAt": _event_time(scripted.created_at),
        "desiredStatus": task.desired_status,
        "group": task.group,
        "lastStatus": task.last_status,
        "launchType": task.launch_type,
        "overrides": {"containerOverrides": []},
        "startedBy": task.started_by,
        "stopCode": task.stop_code or None,
        "stoppedReason": task.stopped_reason or None,
        "taskArn": task.task_arn,
        "taskDefinitionArn": task.task_definition_arn,
        "updatedAt": _event_time(datetime.now(UTC)),
        "version": scripted.version,
    }
    for stamp, key in (
        ("pull_started_at", "pullStartedAt"),
        ("pull_stopped_at", "pullStoppedAt"),
        ("started_at", "startedAt"),
        ("stopping_at", "stoppingAt"),
        ("execution_stopped_at", "executionStoppedAt"),
        ("stopped_at", "stoppedAt"),
    ):
        if stamp in scripted.stamps:
            detail[key] = _event_time(scripted.stamps[stamp])
    _arn, _aws, _ecs, region, account, _rest = task.cluster_arn.split(":", 5)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "ECS Task State Change",
        "source": "aws.ecs",
        "account": account,
        "time": _event_time(datetime.now(UTC)),
        "region": region,
        "resources": [task.task_arn],
        "detail": {k: v for k, v in detail.items() if v is not None},
    }


# -- the per-test state ---------------------------------------------------------------------


@dataclass
class _Rule:
    script: TaskScript
    matcher: TaskMatcher | None
    remaining: int | None


@dataclass
class _RunTaskRule:
    script: RunTaskScript
    remaining: int | None


@dataclass(frozen=True)
class _TokenRecord:
    fingerprint: str
    task_arns: tuple[str, ...]
    failures: tuple[Mapping[str, str], ...]


class EcsScripter:
    """Everything scripted for one test. Thread-safe: moto serves requests on many threads."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.default_script = TaskScript()
        self._rules: list[_Rule] = []
        self._run_task_answers: list[_RunTaskRule] = []
        self._tasks: dict[str, _ScriptedTask] = {}
        self._tokens: dict[tuple[str, str], _TokenRecord] = {}
        self._launched = 0
        #: receives every task state change event (ECS -> EventBridge -> here); None: no events
        self.event_sink: Callable[[dict[str, Any]], None] | None = None
        self.events_sent = 0

    # test-facing
    def add_rule(self, script: TaskScript, matcher: TaskMatcher | None, count: int | None) -> None:
        with self._lock:
            self._rules.append(_Rule(script, matcher, count))

    def queue_run_task(self, answer: RunTaskScript) -> None:
        with self._lock:
            self._run_task_answers.append(_RunTaskRule(answer, answer.times))

    def rescript(self, task_arn: str, script: TaskScript) -> None:
        with self._lock:
            scripted = self._get(task_arn)
            scripted.timeline = _timeline(script, initial=None)
            scripted.apply()

    def stop_now(self, task_arn: str, outcome: TaskOutcome, stopping: int = 0) -> None:
        self.rescript(
            task_arn,
            TaskScript(provisioning=0, pending=0, running=0, stopping=stopping, outcome=outcome),
        )

    def known_task_arns(self) -> list[str]:
        with self._lock:
            return list(self._tasks)

    def _get(self, task_arn: str) -> _ScriptedTask:
        for arn, scripted in self._tasks.items():
            if arn == task_arn or arn.rsplit("/", 1)[-1] == task_arn.rsplit("/", 1)[-1]:
                return scripted
        raise KeyError(f"no task {task_arn} was launched in this test")

    # moto-facing
    def run_task_answer(self, request: Mapping[str, Any]) -> RunTaskScript | None:
        """The first queued answer, in the order queued, that takes this request."""
        with self._lock:
            for rule in self._run_task_answers:
                if rule.remaining == 0:
                    continue
                if rule.script.where is not None and not rule.script.where(request):
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                return rule.script
            return None

    def adopt(self, task: Any, task_definition: Any) -> None:
        """A task moto just created: give it every container and a script."""
        with self._lock:
            info = TaskInfo(
                task_arn=task.task_arn,
                started_by=task.started_by or "",
                tags={t["key"]: t["value"] for t in task.tags or []},
                group=task.group,
                task_definition_arn=task.task_definition_arn,
                launch_index=self._launched,
            )
            self._launched += 1
            script = self._choose(info)
            # moto would otherwise advance the status itself on every describe
            task._transitions = []
            scripted = _ScriptedTask(
                moto=task,
                containers=_containers_for(task, task_definition),
                timeline=_timeline(script, initial="PROVISIONING"),
                created_at=datetime.now(UTC),
            )
            task.containers = [c.moto for c in scripted.containers]
            self._tasks[task.task_arn] = scripted
            scripted.on_change = self._changed
            scripted.apply()

    def _choose(self, info: TaskInfo) -> TaskScript:
        for rule in self._rules:
            if rule.remaining == 0 or (rule.matcher is not None and not rule.matcher(info)):
                continue
            if rule.remaining is not None:
                rule.remaining -= 1
            return rule.script
        return self.default_script

    def described(self, task: Any) -> None:
        with self._lock:
            scripted = self._tasks.get(task.task_arn)
            if scripted is None:
                return
            scripted.timeline.describes_seen += 1
            scripted.apply()

    def stop_requested(self, task: Any, reason: str) -> None:
        with self._lock:
            scripted = self._tasks.get(task.task_arn)
            if scripted is None:
                return
            before = scripted.timeline.current()
            if before.last_status == "STOPPED":
                scripted.apply()  # already stopped: StopTask changes nothing
                return
            if before.last_status in ("PROVISIONING", "PENDING", "ACTIVATING"):
                scripted.never_started = "started_at" not in scripted.stamps
            scripted.timeline = _Timeline(
                initial=_Phase(before.last_status, "STOPPED", 0),
                phases=[_Phase("DEACTIVATING", "STOPPED", 1), _Phase("STOPPED", "STOPPED", None)],
                outcome=user_stopped(reason or "Task stopped by user"),
            )
            scripted.apply()

    def _changed(self, scripted: _ScriptedTask) -> None:
        sink = self.event_sink
        if sink is not None:
            self.events_sent += 1
            sink(task_state_change_event(scripted))

    def remember_token(self, key: tuple[str, str], record: _TokenRecord) -> None:
        with self._lock:
            self._tokens[key] = record

    def token(self, key: tuple[str, str]) -> _TokenRecord | None:
        with self._lock:
            return self._tokens.get(key)


def _containers_for(task: Any, task_definition: Any) -> list[_Container]:
    from moto.ecs.models import Container

    account, region = task._account_id, task.region_name
    task_id = task.task_arn.rsplit("/", 1)[-1]
    containers = []
    for definition in task_definition.container_definitions:
        moto = Container(task_definition)
        moto.name = definition.get("name")
        moto.image = definition.get("image")
        moto.cpu = definition.get("cpu", 0)
        moto.memory = definition.get("memory")
        moto.environment = definition.get("environment")
        moto.command = definition.get("command")
        moto.task_arn = task.task_arn  # moto puts the task definition ARN here
        moto.container_arn = (
            f"arn:aws:ecs:{region}:{account}:container/{task.cluster_name}/{task_id}/{uuid.uuid4()}"
        )
        containers.append(
            _Container(
                moto=moto,
                essential=definition.get("essential", True),
                log_configuration=definition.get("logConfiguration"),
            )
        )
    return containers


# -- wiring into moto -----------------------------------------------------------------------


class _ActiveSlot:
    """The scripter of the running test; moto's request threads read it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.scripter: EcsScripter | None = None


_slot = _ActiveSlot()


@contextmanager
def activate(scripter: EcsScripter) -> Iterator[EcsScripter]:
    """Make ``scripter`` the one the patched moto consults, for the duration of a test."""
    with _slot.lock:
        _slot.scripter = scripter
    try:
        yield scripter
    finally:
        with _slot.lock:
            _slot.scripter = None


def _scripter() -> EcsScripter | None:
    return _slot.scripter


def _fingerprint(body: Mapping[str, Any]) -> str:
    return json.dumps({k: v for k, v in body.items() if k != "clientToken"}, sort_keys=True)


def _run_task(self: Any) -> Any:
    """RunTask, as ECS answers it (see the module docstring)."""
    from moto.core.responses import ActionResult
    from moto.ecs.exceptions import ECSException, InvalidParameterException

    scripter = _scripter()
    if scripter is None:
        return _ORIGINALS["run_task"](self)
    backend = self.ecs_backend
    body: dict[str, Any] = json.loads(self.body or "{}")
    cluster = backend._get_cluster(body.get("cluster", "default"))
    token = body.get("clientToken")
    token_key = (cluster.arn, token) if token else None
    if token_key is not None and (seen := scripter.token(token_key)) is not None:
        if seen.fingerprint != _fingerprint(body):
            conflict = ECSException(
                "ConflictException",
                "The RunTask request could not be processed due to conflicts. The provided "
                "clientToken is already in use with a different RunTask request. The resourceIds "
                "are the existing task ARNs which are already associated with the clientToken.",
            )
            conflict.resourceIds = list(seen.task_arns)  # type: ignore[attr-defined]
            raise conflict
        tasks = [backend.tasks[cluster.name][arn] for arn in seen.task_arns]
        return ActionResult({"tasks": tasks, "failures": list(seen.failures)})

    count = int(body.get("count", 1))
    answer = scripter.run_task_answer(body) or RunTaskScript()
    launch = answer.launch if answer.launch is not None else max(0, count - len(answer.failures))
    launch_type = body.get("launchType")
    uses_instances = launch_type == "EC2" or (
        not launch_type
        and not body.get("capacityProviderStrategy")
        and not cluster.default_capacity_provider_strategy
    )
    if launch and uses_instances and not backend.container_instances.get(cluster.name):
        raise InvalidParameterException("No Container Instances were found in your cluster.")

    tasks = []
    if launch:
        tasks = backend.run_task(
            cluster.name,
            body.get("taskDefinition"),
            launch,
            body.get("overrides"),
            body.get("startedBy"),
            body.get("tags"),
            launch_type,
            body.get("networkConfiguration"),
            body.get("group"),
            body.get("platformVersion"),
            body.get("capacityProviderStrategy"),
        )
        task_definition = backend.describe_task_definition(body.get("taskDefinition"))
        for task in tasks:
            scripter.adopt(task, task_definition)
    failures = [dict(f) for f in answer.failures]
    if token_key is not None:
        scripter.remember_token(
            token_key,
            _TokenRecord(_fingerprint(body), tuple(t.task_arn for t in tasks), tuple(failures)),
        )
    return ActionResult({"tasks": tasks, "failures": failures})


def _describe_tasks(self: Any) -> Any:
    from moto.core.responses import ActionResult

    # moto flips include=TAGS on a class-level dict: give this request its own copy.
    self.RESPONSE_KEY_PATH_TO_TRANSFORMER = copy.copy(type(self).RESPONSE_KEY_PATH_TO_TRANSFORMER)
    result = _ORIGINALS["describe_tasks"](self)
    scripter = _scripter()
    if scripter is None:
        return result
    tasks = result.result["tasks"]
    for task in tasks:
        scripter.described(task)
    found = {t.task_arn for t in tasks} | {t.task_arn.rsplit("/", 1)[-1] for t in tasks}
    requested: Sequence[str] = self._get_param("tasks", [])
    missing = [{"arn": ref, "reason": "MISSING"} for ref in requested if ref not in found]
    return ActionResult({"tasks": tasks, "failures": missing})


def _list_tasks(self: Any) -> Any:
    from moto.core.responses import ActionResult

    if _scripter() is None or self._get_param("desiredStatus"):
        return _ORIGINALS["list_tasks"](self)
    tasks = self.ecs_backend.list_tasks(
        self._get_param("cluster", "default"),
        self._get_param("containerInstance"),
        self._get_param("family"),
        self._get_param("startedBy"),
        self._get_param("serviceName"),
        "RUNNING",  # ECS's default filter; moto has none
    )
    return ActionResult({"taskArns": [t.task_arn for t in tasks]})


def _stop_task(self: Any) -> Any:
    from moto.core.responses import ActionResult
    from moto.ecs.exceptions import InvalidParameterException

    scripter = _scripter()
    if scripter is None:
        return _ORIGINALS["stop_task"](self)
    backend = self.ecs_backend
    cluster = backend._get_cluster(self._get_param("cluster", "default"))
    ref: str = self._get_param("task") or ""
    task_id = ref.rsplit("/", 1)[-1]
    task = next(
        (t for arn, t in backend.tasks.get(cluster.name, {}).items() if arn.endswith("/" + task_id)),
        None,
    )
    if task is None or not task_id:
        raise InvalidParameterException("The referenced task was not found.")
    if task.desired_status != "STOPPED":
        # moto's own StopTask releases container-instance resources; keep that bookkeeping
        backend.stop_task(cluster.name, task.task_arn, self._get_param("reason") or "")
    scripter.stop_requested(task, self._get_param("reason") or "")
    return ActionResult({"task": task})


_PATCHED: dict[str, Callable[[Any], Any]] = {
    "run_task": _run_task,
    "describe_tasks": _describe_tasks,
    "list_tasks": _list_tasks,
    "stop_task": _stop_task,
}
_ORIGINALS: dict[str, Callable[[Any], Any]] = {}


def install_moto_patches() -> Callable[[], None]:
    """Route moto's ECS RunTask / DescribeTasks / ListTasks / StopTask through the scripter.

    The patches only change behaviour while a scripter is active (``activate``), so in-process
    ``mock_aws`` users see plain moto otherwise. Returns the function that undoes them.
    """
    from moto.ecs.responses import EC2ContainerServiceResponse as Responses

    if _ORIGINALS:
        return lambda: None
    for name, patched in _PATCHED.items():
        _ORIGINALS[name] = getattr(Responses, name)
        setattr(Responses, name, patched)

    def undo() -> None:
        for name, original in _ORIGINALS.items():
            setattr(Responses, name, original)
        _ORIGINALS.clear()

    return undo
