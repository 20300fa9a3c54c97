"""``EcsComputeOperator``: run ECS tasks for a tenant, on the shared compute lifecycle.

This module only says what to launch: a RunTask request template (task definition, launch type
or capacity provider strategy, network configuration, overrides, tags) and the backend that
sends it (``EcsComputeHook``). Launching one task per unit, idempotency tokens, waiting,
partial failures and error handling are ``BaseComputeOperator``'s.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, PlainValidator

from airflow_compute_provider.errors import ComputeConfigError
from airflow_compute_provider.hooks.base import ComputeBackend
from airflow_compute_provider.hooks.container_logs import ContainerLogReader
from airflow_compute_provider.lifecycle.arguments import ComputeArguments, argument
from airflow_compute_provider.links import EcsTaskConsoleLink
from airflow_compute_provider.operators.base import BaseComputeOperator

_Name = Annotated[str, Field(min_length=1, max_length=2048)]
_Short = Annotated[str, Field(min_length=1, max_length=64)]
_ConnId = Annotated[str, Field(min_length=1, max_length=250)]
_LogName = Annotated[str, Field(min_length=1, max_length=512)]


def _strategy(value: Any) -> Any:
    if value is None:
        return None
    items = list(value)
    for item in items:
        if not isinstance(item, Mapping) or not item.get("capacityProvider"):
            raise ValueError("every item needs a 'capacityProvider'")
    return items


def _tags(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    raise ValueError("must be a mapping of tag keys to values")


class EcsArguments(ComputeArguments):
    """The arguments of ``EcsComputeOperator``: ``ComputeArguments``' and these."""

    cluster: _Name = argument(meaning="cluster name or ARN")
    task_definition: _Name = argument(meaning="family, `family:revision` or ARN")
    launch_type: Literal["FARGATE", "EC2", "EXTERNAL"] | None = argument(
        None, "`FARGATE`, `EC2` or `EXTERNAL`; excludes `capacity_provider_strategy`"
    )
    capacity_provider_strategy: Annotated[list[dict[str, Any]] | None, PlainValidator(_strategy)] = argument(
        None, 'RunTask\'s list of `{"capacityProvider", "weight", "base"}`'
    )
    network_configuration: dict[str, Any] | None = argument(None, "RunTask's `networkConfiguration`")
    overrides: dict[str, Any] | None = argument(
        None, "RunTask's `overrides`; environment values are treated as secrets (masked in logs)"
    )
    tags: Annotated[dict[str, str] | None, PlainValidator(_tags)] = argument(
        None,
        "extra tags for every task, as a mapping; the operator adds its own (tenant, execution, "
        "unit, generation)",
    )
    platform_version: _Short | None = argument(None, "the Fargate platform version")
    aws_conn_id: _ConnId | None = argument(
        "aws_default",
        "the Amazon provider's connection (its extra may carry `endpoint_url`, `config_kwargs`)",
    )
    region_name: _Short | None = argument(None, "the AWS region", shown="the connection's")
    awslogs_group: _LogName | None = argument(
        None,
        "the CloudWatch Logs group of the containers' output ([Container logs](container-logs.md))",
        shown="the task definition's `awslogs-group`",
    )
    awslogs_stream_prefix: _LogName | None = argument(
        None,
        "the stream prefix; a container's stream is `<prefix>/<container>/<task id>`",
        shown="the task definition's `awslogs-stream-prefix`",
    )

    @classmethod
    def check_together(cls, values: Mapping[str, Any]) -> None:
        super().check_together(values)
        if values.get("launch_type") and values.get("capacity_provider_strategy"):
            raise ComputeConfigError(
                "launch_type and capacity_provider_strategy exclude each other; give one",
                argument="capacity_provider_strategy",
            )


class EcsComputeOperator(BaseComputeOperator):
    """Run ``count`` ECS tasks of ``task_definition`` on ``cluster`` for a tenant.

    Container output (``get_logs``) is read from CloudWatch Logs through the Amazon provider's
    ``AwsLogsHook`` (``docs/howto/container-logs.md``). The parameters are ``EcsArguments``':
    ``BaseComputeOperator``'s and the ECS ones, listed below from the model.
    """

    provider = "ecs"
    arguments_model = EcsArguments

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
        launch_type: str | None = EcsArguments.DEFAULTS.launch_type,
        capacity_provider_strategy: list[dict[str, Any]]
        | None = EcsArguments.DEFAULTS.capacity_provider_strategy,
        network_configuration: dict[str, Any] | None = EcsArguments.DEFAULTS.network_configuration,
        overrides: dict[str, Any] | None = EcsArguments.DEFAULTS.overrides,
        tags: dict[str, str] | None = EcsArguments.DEFAULTS.tags,
        platform_version: str | None = EcsArguments.DEFAULTS.platform_version,
        aws_conn_id: str | None = EcsArguments.DEFAULTS.aws_conn_id,
        region_name: str | None = EcsArguments.DEFAULTS.region_name,
        awslogs_group: str | None = EcsArguments.DEFAULTS.awslogs_group,
        awslogs_stream_prefix: str | None = EcsArguments.DEFAULTS.awslogs_stream_prefix,
        **kwargs: Any,
    ) -> None:
        self._keep_arguments(dict(locals()))
        super().__init__(**kwargs)

    def make_backend(self) -> ComputeBackend:
        from airflow_compute_provider.hooks.ecs import EcsComputeHook

        return EcsComputeHook(
            aws_conn_id=self.aws_conn_id, region_name=self.region_name, cluster=self.cluster
        )

    def launch_request(self, args: ComputeArguments) -> dict[str, Any]:
        assert isinstance(args, EcsArguments)
        request: dict[str, Any] = {"taskDefinition": args.task_definition}
        if args.launch_type:
            request["launchType"] = args.launch_type
        if args.capacity_provider_strategy:
            request["capacityProviderStrategy"] = list(args.capacity_provider_strategy)
        if args.network_configuration:
            request["networkConfiguration"] = dict(args.network_configuration)
        if args.overrides:
            request["overrides"] = dict(args.overrides)
        if args.platform_version:
            request["platformVersion"] = args.platform_version
        if args.tags:
            request["tags"] = [{"key": k, "value": v} for k, v in args.tags.items()]
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
        conn_id: str | None = self.aws_conn_id
        return conn_id
