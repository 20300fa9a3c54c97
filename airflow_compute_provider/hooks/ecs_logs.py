"""Container output of a unit's ECS task, from CloudWatch Logs (the ``awslogs`` log driver).

``EcsLogReader`` implements ``container_logs.ContainerLogReader``:

    where the lines are   the operator's task definition (DescribeTaskDefinition, once per
                          reader: the ECS API's task ARN does not name it without a
                          DescribeTasks per unit, which status polling already makes) names, per
                          container, ``logConfiguration`` with ``logDriver: awslogs`` and the
                          options ``awslogs-group``, ``awslogs-region`` and
                          ``awslogs-stream-prefix``; the stream is
                          ``<prefix>/<container>/<task id>`` (the AWS documentation of the
                          awslogs driver: "Using the awslogs log driver", stream naming).
                          ``awslogs_group`` / ``awslogs_stream_prefix`` override the task
                          definition's, as on ``EcsRunTaskOperator``
    read(...)             the stream's events from ``since`` on, through the Amazon provider's
                          ``AwsLogsHook.get_log_events`` (its pagination), at most
                          ``MAX_EVENTS_PER_READ`` events
    tail(...)             the main container's (the first essential one's) last events
                          (GetLogEvents ``startFromHead=false``)

No awslogs configuration, a missing group or stream, AccessDenied, a throttled or unreachable
logs API: each is a warning in the ``LogRead``; nothing here raises. botocore's own connect and
read timeouts bound a slow logs API (``BOTOCORE_CONFIG``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from airflow_compute_provider.hooks.base import Unit
from airflow_compute_provider.hooks.container_logs import LogLine, LogRead, clean_line

#: events of one read; a unit that printed more between two reads shows the first ones, the
#: next read continues from there
MAX_EVENTS_PER_READ = 10_000
#: a slow logs API costs seconds, not the task: short timeouts, two attempts
BOTOCORE_CONFIG: dict[str, Any] = {
    "connect_timeout": 5,
    "read_timeout": 5,
    "retries": {"max_attempts": 2, "mode": "standard"},
}


@dataclass(frozen=True)
class AwsLogsTarget:
    """Where one container's lines go."""

    container: str
    group: str
    region: str | None
    stream: str


class EcsLogReader:
    """Reads ECS tasks' awslogs streams.

    :param aws_conn_id: the Airflow AWS connection (the ECS hook's).
    :param region_name: the ECS region; the log region is the task definition's
        ``awslogs-region`` when it names one.
    :param task_definition: the units' task definition (family, family:revision or ARN).
    :param awslogs_group: overrides every container's log group.
    :param awslogs_stream_prefix: overrides every container's stream prefix.
    """

    def __init__(
        self,
        aws_conn_id: str | None,
        region_name: str | None,
        *,
        task_definition: str,
        awslogs_group: str | None = None,
        awslogs_stream_prefix: str | None = None,
    ) -> None:
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.task_definition = task_definition
        self.awslogs_group = awslogs_group
        self.awslogs_stream_prefix = awslogs_stream_prefix
        self._targets: dict[str, list[AwsLogsTarget]] = {}
        self._definitions: list[Mapping[str, Any]] | None = None
        self._logs_hooks: dict[str | None, Any] = {}
        self._ecs: Any = None

    # -- ContainerLogReader --------------------------------------------------------------------

    def read(self, unit: Unit, containers: Sequence[str] | bool | None, since: datetime | None) -> LogRead:
        result = LogRead()
        for target in self._chosen(unit, containers, result):
            start = int(since.timestamp() * 1000) if since is not None else 0
            try:
                events = self._logs(target.region).get_log_events(
                    target.group, target.stream, start_time=start, start_from_head=True
                )
                for count, event in enumerate(events):
                    if count >= MAX_EVENTS_PER_READ:
                        result.warnings.append(
                            f"unit {unit.index}: more than {MAX_EVENTS_PER_READ} lines since the last "
                            f"read of {target.stream}; the rest follows at the next read"
                        )
                        break
                    result.lines.append(_line(event, target.container))
            except Exception as exc:
                result.warnings.append(_warning(unit, target, exc))
        return result

    def tail(self, unit: Unit, lines: int) -> tuple[str | None, LogRead]:
        result = LogRead()
        chosen = self._chosen(unit, None, result)
        if not chosen:
            return None, result
        target = chosen[0]
        try:
            response = self._logs(target.region).conn.get_log_events(
                logGroupName=target.group, logStreamName=target.stream, startFromHead=False, limit=lines
            )
            result.lines.extend(_line(e, target.container) for e in response.get("events") or [])
        except Exception as exc:
            result.warnings.append(_warning(unit, target, exc))
        return target.container, result

    def events(self, unit: Unit, count: int) -> list[str]:
        return []  # a stopped task's own words are its stoppedReason, already in the error

    # -- where the lines are -------------------------------------------------------------------

    def _chosen(
        self, unit: Unit, containers: Sequence[str] | bool | None, result: LogRead
    ) -> list[AwsLogsTarget]:
        targets = self._targets.get(unit.resource_id)
        if targets is None:
            try:
                targets = self._targets_of(unit, result)
            except Exception as exc:
                result.warnings.append(
                    f"unit {unit.index}: cannot find where task {unit.resource_id} logs: "
                    f"{type(exc).__name__}: {str(exc)[:200]}"
                )
                return []
            self._targets[unit.resource_id] = targets
        if containers is None or containers is False:
            return targets[:1]
        if containers is True:
            return targets
        return [t for t in targets if t.container in containers]

    def _targets_of(self, unit: Unit, result: LogRead) -> list[AwsLogsTarget]:
        definitions = self._definitions
        if definitions is None:
            response = self._ecs_client().describe_task_definition(taskDefinition=self.task_definition)
            definitions = list(response["taskDefinition"].get("containerDefinitions") or [])
            self._definitions = definitions
        # the first essential container is the main one (ECS's default: essential unless said)
        ordered = sorted(definitions, key=lambda c: 0 if c.get("essential", True) else 1)
        task_id = unit.resource_id.rsplit("/", 1)[-1]
        targets: list[AwsLogsTarget] = []
        for container in ordered:
            name = str(container.get("name"))
            config = container.get("logConfiguration") or {}
            options = config.get("options") or {}
            if config.get("logDriver") != "awslogs" and not self.awslogs_group:
                result.warnings.append(
                    f"unit {unit.index}: container {name} has no awslogs log configuration "
                    "(logDriver awslogs); its output is not read"
                )
                continue
            group = self.awslogs_group or options.get("awslogs-group")
            prefix = self.awslogs_stream_prefix or options.get("awslogs-stream-prefix")
            if not group or not prefix:
                result.warnings.append(
                    f"unit {unit.index}: container {name} names no awslogs-group or "
                    "awslogs-stream-prefix; its output is not read"
                )
                continue
            region = options.get("awslogs-region") or unit.locator.get("region") or self.region_name
            targets.append(AwsLogsTarget(name, str(group), region, f"{prefix}/{name}/{task_id}"))
        return targets

    def _ecs_client(self) -> Any:
        if self._ecs is None:
            from airflow.providers.amazon.aws.hooks.ecs import EcsHook

            self._ecs = EcsHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name).conn
        return self._ecs

    def _logs(self, region: str | None) -> Any:
        hook = self._logs_hooks.get(region)
        if hook is None:
            from airflow.providers.amazon.aws.hooks.logs import AwsLogsHook
            from botocore.config import Config

            hook = AwsLogsHook(
                aws_conn_id=self.aws_conn_id, region_name=region, config=Config(**BOTOCORE_CONFIG)
            )
            self._logs_hooks[region] = hook
        return hook


def _line(event: Mapping[str, Any], container: str) -> LogLine:
    stamp = event.get("timestamp")
    at = datetime.fromtimestamp(int(stamp) / 1000, UTC) if stamp is not None else None
    return LogLine(at, container, clean_line(str(event.get("message", ""))))


def _warning(unit: Unit, target: AwsLogsTarget, exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    code = (response.get("Error") or {}).get("Code") if isinstance(response, dict) else None
    if code == "ResourceNotFoundException":
        why = "the log group or stream does not exist (yet)"
    elif code in ("AccessDeniedException", "AccessDenied"):
        why = "access denied to CloudWatch Logs (logs:GetLogEvents)"
    else:
        why = f"{code or type(exc).__name__}: {str(exc)[:200]}"
    return f"unit {unit.index}: cannot read {target.group} {target.stream}: {why}"


__all__ = ["BOTOCORE_CONFIG", "MAX_EVENTS_PER_READ", "AwsLogsTarget", "EcsLogReader"]
