"""ECS for the tests: a moto server on a loopback port, and a per-test environment that scripts
what ECS reports about tasks.

    moto_server  session fixture: ``MotoServer`` (``.url``), a ``ThreadedMotoServer`` in this
                 process on 127.0.0.1 and a free port, with the ECS patches of ``ecs_script``
    ecs_env      function fixture: ``EcsEnv``, a clean moto (POST /moto-api/reset), fake AWS
                 credentials and region us-east-1 in the environment, ``AIRFLOW_CONN_AWS_DEFAULT``
                 pointing at the server, a VPC / subnet / security group, a cluster and a
                 FARGATE task definition (network mode awsvpc, one essential container)

Scripting, all on ``ecs_env`` (types and presets in ``tests.harness.ecs_script``)::

    ecs_env.script_tasks(TaskScript(running=2, outcome=OOM_KILLED))          # the next task
    ecs_env.script_tasks(TaskScript(outcome=exited(1)), count=None,          # every task
                         where=lambda t: t.tags.get("unit") == "1")          # ...that matches
    ecs_env.default_script = RUNS_FOREVER                                    # unmatched tasks
    ecs_env.script_next_run_task(failures=[{"arn": ..., "reason": "RESOURCE:MEMORY"}])
    ecs_env.script_next_run_task(failures=[...], times=None,                 # every RunTask
                                 where=lambda body: "-u1-" in body.get("clientToken", ""))
    ecs_env.stop_task(arn, OOM_KILLED)             # STOPPED now (stopping=N: DEACTIVATING first)
    ecs_env.stop_task(arn, TaskOutcome(stop_code="SpotInterruption", stopped_reason="..."))
    ecs_env.hold_pending(arn); ecs_env.set_script(arn, TaskScript(...))
    ecs_env.expire_task(arn)                       # ECS forgot it: DescribeTasks says MISSING

A new task answers PROVISIONING in the RunTask response and then moves one phase per
DescribeTasks call as its script says (default: PENDING once, RUNNING once, then STOPPED with
exit code 0). ``ecs_env.run_task(count=1, **kwargs)`` is a RunTask with the fixture's cluster,
task definition and network configuration filled in.

To put the fault proxy in between: ``proxy = fault_proxy(ecs_env.endpoint_url)`` then
``ecs_env.route_through(proxy.url)``; the Airflow connection then points at the proxy, while
``ecs_env.ecs`` keeps talking to moto directly so test-side checks are never faulted.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from tests.harness.ecs_script import (
    HOLD_PENDING,
    EcsScripter,
    RunTaskScript,
    TaskMatcher,
    TaskOutcome,
    TaskScript,
    activate,
    install_moto_patches,
)
from tests.harness.ports import LOOPBACK

ACCOUNT_ID = "123456789012"  # moto's default account
REGION = "us-east-1"
CLUSTER_NAME = "compute-test"
TASK_FAMILY = "compute-test-task"
CONTAINER_NAME = "main"
#: the task definition whose containers log to CloudWatch Logs (awslogs), and where
LOGGED_TASK_FAMILY = "compute-test-logged"
LOG_GROUP = "/ecs/compute-test"
LOG_STREAM_PREFIX = "compute"
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


@dataclass
class MotoServer:
    url: str
    _server: Any = field(repr=False)

    def reset(self) -> None:
        requests.post(f"{self.url}/moto-api/reset", timeout=30).raise_for_status()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    from moto.server import ThreadedMotoServer

    # moto's werkzeug request log would drown the test output
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    undo = install_moto_patches()
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield MotoServer(url=f"http://{host}:{port}", _server=server)
    finally:
        server.stop()
        undo()


def aws_connection_json(endpoint_url: str) -> str:
    """An Airflow ``aws`` connection pointing every service at ``endpoint_url``.

    The Amazon provider (9.x) reads ``endpoint_url`` from the connection extra (per service in
    ``service_config.<service>.endpoint_url`` when set; the top-level one otherwise).
    """
    return json.dumps(
        {
            "conn_type": "aws",
            "login": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "password": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "extra": {"endpoint_url": endpoint_url, "region_name": REGION},
        }
    )


class EcsEnv:
    """One test's ECS: clients, the resources created for it, and the scripting API."""

    def __init__(self, server: MotoServer, scripter: EcsScripter, monkeypatch: pytest.MonkeyPatch):
        self.moto_url = server.url
        self.endpoint_url = server.url
        self.region = REGION
        self.account_id = ACCOUNT_ID
        self._scripter = scripter
        self._monkeypatch = monkeypatch
        self.ecs = self.client("ecs")
        self.ec2 = self.client("ec2")
        self.cluster_name = CLUSTER_NAME
        self.cluster_arn = ""
        self.task_definition_arn = ""
        #: ``TASK_FAMILY`` with an awslogs log configuration (group ``LOG_GROUP`` exists)
        self.logged_task_definition_arn = ""
        self.subnet_id = ""
        self.security_group_id = ""

    # -- clients and routing ----------------------------------------------------------------

    def client(self, service: str = "ecs", endpoint_url: str | None = None, **config: Any) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=endpoint_url or self.moto_url,
            config=Config(**config) if config else None,
        )

    def route_through(self, url: str) -> None:
        """Point the Airflow connection (what the product uses) at ``url``, e.g. a fault proxy."""
        self.endpoint_url = url
        self._monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection_json(url))

    @property
    def network_configuration(self) -> dict[str, Any]:
        return {
            "awsvpcConfiguration": {
                "subnets": [self.subnet_id],
                "securityGroups": [self.security_group_id],
                "assignPublicIp": "DISABLED",
            }
        }

    def run_task(self, count: int = 1, **kwargs: Any) -> dict[str, Any]:
        """RunTask on the fixture's cluster and task definition (kwargs override)."""
        request: dict[str, Any] = {
            "cluster": self.cluster_name,
            "taskDefinition": self.task_definition_arn,
            "launchType": "FARGATE",
            "networkConfiguration": self.network_configuration,
            "count": count,
            **kwargs,
        }
        response: dict[str, Any] = self.ecs.run_task(**request)
        return response

    def describe_task(self, task_arn: str, **kwargs: Any) -> dict[str, Any]:
        tasks = self.ecs.describe_tasks(cluster=self.cluster_name, tasks=[task_arn], **kwargs)["tasks"]
        assert len(tasks) == 1, f"expected one task for {task_arn}, got {tasks}"
        task: dict[str, Any] = tasks[0]
        return task

    # -- scripting ----------------------------------------------------------------------------

    @property
    def default_script(self) -> TaskScript:
        return self._scripter.default_script

    @default_script.setter
    def default_script(self, script: TaskScript) -> None:
        self._scripter.default_script = script

    def script_tasks(
        self, script: TaskScript, *, count: int | None = 1, where: TaskMatcher | None = None
    ) -> None:
        """The next ``count`` new tasks (None: all) matching ``where`` follow ``script``.
        Rules apply in the order added; a task no rule takes follows ``default_script``."""
        self._scripter.add_rule(script, where, count)

    def script_next_run_task(
        self,
        failures: Sequence[Mapping[str, str]] = (),
        *,
        launch: int | None = None,
        where: Callable[[Mapping[str, Any]], bool] | None = None,
        times: int | None = 1,
    ) -> None:
        """The next ``times`` RunTask calls (None: all) whose request body ``where`` accepts
        answer these ``failures[]`` entries and launch ``count - len(failures)`` tasks, or
        ``launch`` tasks when given. Answers are consulted in the order they were scripted."""
        self._scripter.queue_run_task(
            RunTaskScript(failures=tuple(failures), launch=launch, where=where, times=times)
        )

    def set_script(self, task_arn: str, script: TaskScript) -> None:
        """Replace a launched task's script; describes are counted again from now."""
        self._scripter.rescript(task_arn, script)

    def hold_pending(self, task_arn: str) -> None:
        self._scripter.rescript(task_arn, HOLD_PENDING)

    def stop_task(self, task_arn: str, outcome: TaskOutcome, *, stopping: int = 0) -> None:
        """Stop a task the way ECS would report ``outcome``: ``stopping`` describes see
        DEACTIVATING (desiredStatus STOPPED) first, then STOPPED for good."""
        self._scripter.stop_now(task_arn, outcome, stopping)

    def expire_task(self, task_arn: str) -> None:
        """ECS forgets stopped tasks after about an hour; make this one forgotten now."""
        from moto.backends import get_backend

        backend = get_backend("ecs")[ACCOUNT_ID][REGION]
        for tasks in backend.tasks.values():
            for arn in list(tasks):
                if arn == task_arn or arn.endswith("/" + task_arn):
                    del tasks[arn]

    def events_queue(
        self,
        *,
        visibility_timeout: int = 30,
        transform: Callable[[dict[str, Any]], Sequence[dict[str, Any]]] | None = None,
    ) -> str:
        """An SQS queue (moto's) fed with every task state change event of this test, as the
        EventBridge rule of docs/scaling.md feeds it, named to the triggers by Airflow config
        ``[compute] ecs_events_queues``. ``transform(event)`` returns what to deliver instead:
        ``[]`` loses it, ``[e, e]`` duplicates it, a held-back list reorders. Returns its URL."""
        from moto.backends import get_backend

        name = "compute-events"
        url: str = self.client("sqs").create_queue(
            QueueName=name, Attributes={"VisibilityTimeout": str(visibility_timeout)}
        )["QueueUrl"]
        backend = get_backend("sqs")[ACCOUNT_ID][REGION]

        def deliver(event: dict[str, Any]) -> None:
            for document in transform(event) if transform is not None else [event]:
                backend.send_message(name, json.dumps(document))

        self._scripter.event_sink = deliver
        self._monkeypatch.setenv("AIRFLOW__COMPUTE__ECS_EVENTS_QUEUES", json.dumps({CLUSTER_NAME: url}))
        return url

    def launched_task_arns(self) -> list[str]:
        """Every task RunTask launched in this test, in launch order."""
        return self._scripter.known_task_arns()

    # -- setup ----------------------------------------------------------------------------------

    def _create_resources(self) -> None:
        vpc_id = self.ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        # moto's awsvpc task networking reads the ENI's private DNS name, which exists only
        # when the VPC has DNS hostnames on
        self.ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
        self.subnet_id = self.ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        self.security_group_id = self.ec2.create_security_group(
            GroupName="compute-test", Description="compute tests", VpcId=vpc_id
        )["GroupId"]
        self.cluster_arn = self.ecs.create_cluster(clusterName=CLUSTER_NAME)["cluster"]["clusterArn"]
        self.task_definition_arn = self._register_task_definition(TASK_FAMILY)
        self.client("logs").create_log_group(logGroupName=LOG_GROUP)
        self.logged_task_definition_arn = self._register_task_definition(
            LOGGED_TASK_FAMILY,
            logConfiguration={
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": LOG_GROUP,
                    "awslogs-region": REGION,
                    "awslogs-stream-prefix": LOG_STREAM_PREFIX,
                },
            },
        )

    def _register_task_definition(self, family: str, **container: Any) -> str:
        """A one-container FARGATE task definition (``container``: more of its definition)."""
        return str(
            self.ecs.register_task_definition(
                family=family,
                requiresCompatibilities=["FARGATE"],
                networkMode="awsvpc",
                cpu="256",
                memory="512",
                containerDefinitions=[
                    {
                        "name": CONTAINER_NAME,
                        "image": "public.ecr.aws/docker/library/busybox:latest",
                        "essential": True,
                        # moto needs a container-level memory even where Fargate does not
                        "memory": 512,
                        "command": ["sh", "-c", "echo hello"],
                        **container,
                    }
                ],
            )["taskDefinition"]["taskDefinitionArn"]
        )

    def log_events(self, task_arn: str, container: str = CONTAINER_NAME) -> list[str]:
        """What the task's container printed, as CloudWatch Logs holds it."""
        stream = f"{LOG_STREAM_PREFIX}/{container}/{task_arn.rsplit('/', 1)[-1]}"
        events = self.client("logs").get_log_events(
            logGroupName=LOG_GROUP, logStreamName=stream, startFromHead=True
        )["events"]
        return [str(e["message"]) for e in events]


@pytest.fixture
def ecs_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[EcsEnv]:
    moto_server.reset()
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_ECS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection_json(moto_server.url))
    with activate(EcsScripter()) as scripter:
        env = EcsEnv(moto_server, scripter, monkeypatch)
        env._create_resources()
        yield env
