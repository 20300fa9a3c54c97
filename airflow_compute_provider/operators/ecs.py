"""``EcsComputeOperator``: run ECS tasks for a tenant, on the shared compute lifecycle.

This module only says what to launch: a RunTask request template (task definition, launch type
or capacity provider strategy, network configuration, overrides, tags) and the backend that
sends it (``EcsComputeHook``). Launching one task per unit, idempotency tokens, waiting,
partial failures and error handling are ``BaseComputeOperator``'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from airflow_compute_provider.hooks.base import ComputeBackend
from airflow_compute_provider.hooks.container_logs import ContainerLogReader
from airflow_compute_provider.lifecycle.arguments import Validator, typed
from airflow_compute_provider.links import EcsTaskConsoleLink
from airflow_compute_provider.operators.base import BaseComputeOperator

_Name = Annotated[str, Field(min_length=1, max_length=2048)]


def _strategy_item(item: Any) -> Any:
    if not isinstance(item, Mapping) or not item.get("capacityProvider"):
        raise ValueError("every item needs a 'capacityProvider'")
    return item


def _tags(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    raise ValueError("must be a mapping of tag keys to values")


class EcsComputeOperator(BaseComputeOperator):
    """Run ``count`` ECS tasks of ``task_definition`` on ``cluster`` for a tenant.

    :param cluster: the ECS cluster name or ARN; templated.
    :param task_definition: family, family:revision or ARN; templated.
    :param launch_type: ``FARGATE``, ``EC2`` or ``EXTERNAL``; exclusive with
        ``capacity_provider_strategy``.
    :param capacity_provider_strategy: RunTask's list of ``{"capacityProvider", "weight", "base"}``.
    :param network_configuration: RunTask's ``networkConfiguration`` (``awsvpcConfiguration``).
    :param overrides: RunTask's ``overrides``; environment values in it are treated as secrets.
    :param tags: extra tags for every task, as a mapping.
    :param platform_version: the Fargate platform version.
    :param aws_conn_id: the Amazon provider's connection (``aws_default``).
    :param region_name: the AWS region; default from the connection.
    :param awslogs_group: the CloudWatch Logs group of the containers' output; default the task
        definition's ``awslogs-group`` (as on ``EcsRunTaskOperator``); templated.
    :param awslogs_stream_prefix: the stream prefix; default the task definition's
        ``awslogs-stream-prefix``. A container's stream is ``<prefix>/<container>/<task id>``.

    Container output (``get_logs``) is read from CloudWatch Logs through the Amazon provider's
    ``AwsLogsHook`` (``docs/howto/container-logs.md``).

    Every other parameter is ``BaseComputeOperator``'s.
    """

    provider = "ecs"
    provider_argument_types: ClassVar[Mapping[str, Validator]] = {
        "cluster": typed(_Name),
        "task_definition": typed(_Name),
        "launch_type": typed(Literal["FARGATE", "EC2", "EXTERNAL"] | None),
        "capacity_provider_strategy": lambda v: None if v is None else [_strategy_item(i) for i in v],
        "network_configuration": typed(dict[str, Any] | None),
        "overrides": typed(dict[str, Any] | None),
        "tags": lambda v: None if v is None else _tags(v),
        "platform_version": typed(Annotated[str, Field(min_length=1, max_length=64)] | None),
        "aws_conn_id": typed(Annotated[str, Field(min_length=1, max_length=250)] | None),
        "region_name": typed(Annotated[str, Field(min_length=1, max_length=64)] | None),
        "awslogs_group": typed(Annotated[str, Field(min_length=1, max_length=512)] | None),
        "awslogs_stream_prefix": typed(Annotated[str, Field(min_length=1, max_length=512)] | None),
    }

    template_fields: Sequence[str] = (
        *BaseComputeOperator.template_fields,
        "cluster",
        "task_definition",
        "overrides",
        "network_configuration",
        "tags",
        "awslogs_group",
        "awslogs_stream_prefix",
    )
    operator_extra_links = (EcsTaskConsoleLink(),)
    template_fields_renderers: ClassVar[dict[str, str]] = {
        "overrides": "json",
        "network_configuration": "json",
        "tags": "json",
    }

    def __init__(
        self,
        *,
        cluster: str,
        task_definition: str,
        launch_type: str | None = None,
        capacity_provider_strategy: list[dict[str, Any]] | None = None,
        network_configuration: dict[str, Any] | None = None,
        overrides: dict[str, Any] | None = None,
        tags: dict[str, str] | None = None,
        platform_version: str | None = None,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        awslogs_group: str | None = None,
        awslogs_stream_prefix: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.cluster = cluster
        self.task_definition = task_definition
        self.launch_type = launch_type
        self.capacity_provider_strategy = capacity_provider_strategy
        self.network_configuration = network_configuration
        self.overrides = overrides
        self.tags = tags
        self.platform_version = platform_version
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.awslogs_group = awslogs_group
        self.awslogs_stream_prefix = awslogs_stream_prefix
        super().__init__(**kwargs)

    def provider_arguments(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "task_definition": self.task_definition,
            "launch_type": self.launch_type,
            "capacity_provider_strategy": self.capacity_provider_strategy,
            "network_configuration": self.network_configuration,
            "overrides": self.overrides,
            "tags": self.tags,
            "platform_version": self.platform_version,
            "aws_conn_id": self.aws_conn_id,
            "region_name": self.region_name,
            "awslogs_group": self.awslogs_group,
            "awslogs_stream_prefix": self.awslogs_stream_prefix,
        }

    def _validated(self, *, skip_templates: bool) -> dict[str, Any]:
        args = super()._validated(skip_templates=skip_templates)
        if args.get("launch_type") and args.get("capacity_provider_strategy"):
            from airflow_compute_provider.errors import ComputeConfigError

            raise ComputeConfigError(
                "launch_type and capacity_provider_strategy exclude each other; give one",
                argument="capacity_provider_strategy",
            )
        return args

    def make_backend(self) -> ComputeBackend:
        from airflow_compute_provider.hooks.ecs import EcsComputeHook

        return EcsComputeHook(
            aws_conn_id=self.aws_conn_id, region_name=self.region_name, cluster=self.cluster
        )

    def launch_request(self) -> dict[str, Any]:
        request: dict[str, Any] = {"taskDefinition": self.task_definition}
        if self.launch_type:
            request["launchType"] = self.launch_type
        if self.capacity_provider_strategy:
            request["capacityProviderStrategy"] = list(self.capacity_provider_strategy)
        if self.network_configuration:
            request["networkConfiguration"] = dict(self.network_configuration)
        if self.overrides:
            request["overrides"] = dict(self.overrides)
        if self.platform_version:
            request["platformVersion"] = self.platform_version
        if self.tags:
            request["tags"] = [{"key": k, "value": v} for k, v in self.tags.items()]
        return request

    def make_log_reader(self) -> ContainerLogReader:
        from airflow_compute_provider.hooks.ecs_logs import EcsLogReader

        return EcsLogReader(
            self.aws_conn_id,
            self.region_name,
            task_definition=self.task_definition,
            awslogs_group=self.awslogs_group,
            awslogs_stream_prefix=self.awslogs_stream_prefix,
        )

    def _conn_id(self) -> str | None:
        return self.aws_conn_id
