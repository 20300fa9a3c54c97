"""The benchmark's ECS endpoint: a moto server in a process of its own, scripted like the tests'.

moto answers in Python under one GIL; in its own process it neither slows the triggers being
measured nor has its CPU counted as theirs. The tests' ECS patches (``tests.harness.ecs_script``)
make tasks behave as ECS reports them: here every task stays RUNNING until ``finish`` stops it
with exit code 0.

    EcsEndpoint.start()      spawn the process; returns once moto listens and the VPC, subnet,
                             security group, cluster and FARGATE task definition exist
    endpoint.url             moto's URL (the benchmark puts the counting proxy in front of it)
    endpoint.running(n)      n new RUNNING tasks (RunTask with count=10 per call): their ARNs
    endpoint.finish(arns)    stop them now (exit code 0); returns when each was stopped (epoch)
    endpoint.reset()         a fresh moto with fresh resources
    endpoint.resources()     their ids: subnet, security_group, task_definition
    endpoint.events()        from now on every task state change sends its "ECS Task State
                             Change" event to an SQS queue of this moto (as an EventBridge rule
                             would): returns the queue's URL (until the next reset)
    endpoint.stop()

Commands travel over a ``multiprocessing`` pipe; the process serves one at a time.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

REGION = "us-east-1"
CLUSTER = "bench"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
_RUN_TASK_COUNT = 10  # RunTask launches at most 10 tasks per call
_ACCOUNT = "123456789012"  # moto's default account


@dataclass
class _Resources:
    subnet: str
    security_group: str
    task_definition: str


class EcsEndpoint:
    def __init__(self, process: Any, conn: Connection, url: str) -> None:
        self._process = process
        self._conn = conn
        self.url = url
        self.region = REGION
        self.cluster = CLUSTER

    @classmethod
    def start(cls) -> EcsEndpoint:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(target=_serve, args=(child,), name="bench-moto", daemon=True)
        process.start()
        url = parent.recv()
        return cls(process, parent, url)

    def _call(self, *command: Any) -> Any:
        self._conn.send(command)
        result = self._conn.recv()
        if isinstance(result, BaseException):
            raise result
        return result

    def running(self, count: int) -> list[str]:
        arns: list[str] = self._call("running", count)
        return arns

    def finish(self, arns: Sequence[str]) -> dict[str, float]:
        stopped: dict[str, float] = self._call("finish", list(arns))
        return stopped

    def reset(self) -> None:
        self._call("reset")

    def events(self) -> str:
        queue_url: str = self._call("events")
        return queue_url

    def resources(self) -> dict[str, str]:
        found: dict[str, str] = self._call("resources")
        return found

    def stop(self) -> None:
        try:
            self._call("stop")
        finally:
            self._process.join(timeout=30)


# -- the process --------------------------------------------------------------------------------


def _serve(conn: Connection) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    from tests.harness.ecs_script import RUNS_FOREVER, SUCCEEDED, EcsScripter, activate, install_moto_patches

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    os.environ.update(CREDENTIALS)
    install_moto_patches()
    _index_describe_tasks()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    ecs = boto3.client("ecs", region_name=REGION, endpoint_url=url)
    ec2 = boto3.client("ec2", region_name=REGION, endpoint_url=url)
    scripter = EcsScripter()
    scripter.default_script = RUNS_FOREVER
    with activate(scripter):
        resources = _create_resources(ecs, ec2)
        conn.send(url)
        while True:
            command, *args = conn.recv()
            try:
                if command == "stop":
                    conn.send(None)
                    break
                if command == "running":
                    conn.send(_run_tasks(ecs, resources, int(args[0])))
                elif command == "finish":
                    stopped = {}
                    for arn in args[0]:
                        scripter.stop_now(arn, SUCCEEDED)
                        stopped[arn] = time.time()
                    conn.send(stopped)
                elif command == "events":
                    conn.send(_send_events(scripter, url))
                elif command == "resources":
                    conn.send(dict(vars(resources)))
                elif command == "reset":
                    import requests

                    scripter.event_sink = None
                    requests.post(f"{url}/moto-api/reset", timeout=60).raise_for_status()
                    resources = _create_resources(ecs, ec2)
                    conn.send(None)
                else:
                    conn.send(ValueError(f"unknown command {command!r}"))
            except Exception as exc:
                conn.send(exc)
    server.stop()


def _send_events(scripter: Any, url: str) -> str:
    import json

    import boto3
    from moto.backends import get_backend

    name = "bench-events"
    queue_url: str = boto3.client("sqs", region_name=REGION, endpoint_url=url).create_queue(QueueName=name)[
        "QueueUrl"
    ]
    backend = get_backend("sqs")[_ACCOUNT][REGION]

    def deliver(event: dict[str, Any]) -> None:
        backend.send_message(name, json.dumps(event))

    scripter.event_sink = deliver
    return queue_url


def _index_describe_tasks() -> None:
    """moto's DescribeTasks compares every task of every cluster with every requested reference
    (10,000 tasks x 100 references per call at N=10,000: seconds of moto's CPU per call, which
    would make the endpoint, not the triggers, the thing measured). Look each reference up by
    ARN instead, falling back to moto's scan for a bare task id. Same tasks, same side effects
    (``advance``), in the order requested."""
    from moto.ecs.exceptions import InvalidParameterException
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend.describe_tasks

    def describe_tasks(self: Any, cluster_str: str, tasks: list[str]) -> list[Any]:
        self._get_cluster(cluster_str)
        if not tasks:
            raise InvalidParameterException("Tasks cannot be empty.")
        found: list[Any] = []
        for ref in dict.fromkeys(tasks):
            task = next((ts[ref] for ts in self.tasks.values() if ref in ts), None)
            if task is None:
                if not ref.startswith("arn:"):
                    return original(self, cluster_str, tasks)  # type: ignore[no-any-return]
                continue
            task.advance()
            found.append(task)
        return found

    EC2ContainerServiceBackend.describe_tasks = describe_tasks


def _create_resources(ecs: Any, ec2: Any) -> _Resources:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    # awsvpc tasks each take an address: room for a few thousand
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.0.0/18")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="bench", Description="bench", VpcId=vpc)["GroupId"]
    ecs.create_cluster(clusterName=CLUSTER)
    task_definition = ecs.register_task_definition(
        family="bench",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        containerDefinitions=[
            {"name": "main", "image": "busybox", "essential": True, "memory": 512, "command": ["true"]}
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    return _Resources(subnet, group, task_definition)


def _run_tasks(ecs: Any, resources: _Resources, count: int) -> list[str]:
    arns: list[str] = []
    while len(arns) < count:
        response = ecs.run_task(
            cluster=CLUSTER,
            taskDefinition=resources.task_definition,
            launchType="FARGATE",
            count=min(_RUN_TASK_COUNT, count - len(arns)),
            networkConfiguration={
                "awsvpcConfiguration": {
                    "subnets": [resources.subnet],
                    "securityGroups": [resources.security_group],
                }
            },
        )
        arns.extend(t["taskArn"] for t in response["tasks"])
    # Describe each once, so that every task is RUNNING (and has sent its events, if events are
    # on) before any trigger starts: the benchmark measures waiting, not startup.
    for _phase in ("PENDING", "RUNNING"):  # the script shows each for one describe
        for start in range(0, len(arns), 100):
            ecs.describe_tasks(cluster=CLUSTER, tasks=arns[start : start + 100])
    return arns
