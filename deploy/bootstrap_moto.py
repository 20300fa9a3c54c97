"""Give the compose stack's moto server what the example DAGs launch on, and say how to use it.

Runs once (the ``moto-bootstrap`` service of ``docker-compose.yml``) against ``MOTO_ENDPOINT``:
creates a VPC with a subnet and a security group, the ``tenants`` cluster, and the Fargate task
definitions the example DAGs name (``tenant-provisioner``, ``tenant-worker``,
``tenant-migration``), then writes the params that point a DAG run at them to ``CONF_FILE``
and prints them. moto makes up the subnet and security group ids, so a run needs them::

    airflow dags trigger tenant_provisioning_ecs --conf "$(cat /opt/airflow/examples/ecs-conf.json)"

Only boto3 is needed (the Airflow image has it through the Amazon provider).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ENDPOINT = os.environ.get("MOTO_ENDPOINT", "http://moto:5000")
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
CONF_FILE = Path(os.environ.get("CONF_FILE", "/examples/ecs-conf.json"))
CLUSTER = "tenants"
TASK_DEFINITIONS = ("tenant-provisioner", "tenant-worker", "tenant-migration")


def wait_for_moto(timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{ENDPOINT}/moto-api/", timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def client(service: str) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
        aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"),
    )


def bootstrap() -> dict[str, Any]:
    ec2, ecs = client("ec2"), client("ecs")
    vpc_id = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    # moto's awsvpc networking reads the task ENI's private DNS name: DNS hostnames must be on.
    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": True})
    subnet_id = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    group_id = ec2.create_security_group(GroupName="tenants", Description="example tenants", VpcId=vpc_id)[
        "GroupId"
    ]
    ecs.create_cluster(clusterName=CLUSTER)
    for family in TASK_DEFINITIONS:
        ecs.register_task_definition(
            family=family,
            requiresCompatibilities=["FARGATE"],
            networkMode="awsvpc",
            cpu="256",
            memory="512",
            containerDefinitions=[
                {
                    "name": "main",
                    "image": "public.ecr.aws/docker/library/busybox:latest",
                    "essential": True,
                    "memory": 512,  # moto wants a container-level memory even on Fargate
                    "command": ["sh", "-c", "echo provisioning"],
                }
            ],
        )
    return {"tenant": "acme", "cluster": CLUSTER, "subnets": [subnet_id], "security_groups": [group_id]}


def main() -> int:
    wait_for_moto()
    conf = bootstrap()
    CONF_FILE.parent.mkdir(parents=True, exist_ok=True)
    CONF_FILE.write_text(json.dumps(conf) + "\n")
    print(f"moto is ready at {ENDPOINT}; conf for the ECS example DAGs ({CONF_FILE}):")
    print(json.dumps(conf))
    return 0


if __name__ == "__main__":
    sys.exit(main())
