"""Secret canaries: unique secrets planted everywhere a DAG author or an operator of the platform
puts them, then looked for everywhere the provider writes.

Planted (each a fresh random string):

    ECS overrides        environment values of a task that fails (its DescribeTasks JSON, which
                         carries the overrides, goes to the debug log)
    pod env vars         env values of a pod that fails (its JSON goes to the debug log)
    connections          the AWS connection's password and an extra (``aws_session_token``), the
                         Kubernetes connection's password and an extra, the state store
                         connection's password (PostgreSQL, trust authentication: it is sent
                         and ignored)
    error responses      ECS and the Kubernetes API server (the fault proxy answering for them)
                         echo an env value and the AWS password back inside their error messages

Looked for, after one ``dag.test()`` run in a child process: every line the child wrote (task
logs included, with every logger of this provider at DEBUG through
``AIRFLOW__LOGGING__NAMESPACE_LEVELS``, everything else at Airflow's default level), every XCom
of the run, the rendered template fields Airflow stored, and every row of the tenant state
store. No canary may appear in any of them.

Why only this provider's loggers at DEBUG: ``dag.test()`` runs the task in the process that
prints its log, with no supervisor in between, and it is the supervisor of a real worker that
masks registered secrets in every log line. At DEBUG, botocore prints whole request bodies and
signing headers (the overrides' environment, the session token), and Airflow's task runner
prints each message it sends its supervisor, ``MaskSecret(value=...)`` included: that is
botocore's and Airflow's behaviour, masked by a real worker's supervisor, not this provider's.
What this provider writes itself must be clean with no masker behind it, and is.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

import pytest

from airflow_compute_provider.hooks import ecs_tags
from tests.harness.ecs import CLUSTER_NAME, REGION, TASK_FAMILY
from tests.harness.ecs_script import TaskScript, exited
from tests.harness.kube import AIRFLOW_CONN_ENV
from tests.harness.postgres import PostgresServer
from tests.harness.proxy import FaultProxy
from tests.harness.proxy_faults import ecs_error, kube_error
from tests.reliability.connections import proxied_kubeconfig
from tests.reliability.dags import Code, Task, compute_dag
from tests.reliability.tally import TALLY
from tests.unit.state.support import snapshot

pytestmark = [pytest.mark.reliability, pytest.mark.airflow, pytest.mark.kube, pytest.mark.postgres]

DAG_ID = "canaries"
DEBUG_OURS = "airflow_compute_provider=DEBUG airflow.task.hooks.airflow_compute_provider=DEBUG"


def _canary(label: str) -> str:
    return f"canary{secrets.token_hex(6)}{label}"


def _aws_connection(url: str, password: str, token: str) -> str:
    return json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": password,
            "extra": {"endpoint_url": url, "region_name": REGION, "aws_session_token": token},
        }
    )


def _kube_connection(kubeconfig: str, namespace: str, password: str, extra: str) -> str:
    return json.dumps(
        {
            "conn_type": "kubernetes",
            "password": password,
            "extra": {"kube_config_path": kubeconfig, "namespace": namespace, "api_token": extra},
        }
    )


def _xcoms(dag_id: str) -> list[str]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter_by(dag_id=dag_id).all()
        return [
            f"{r.task_id}/{r.key}: {json.dumps(XComModel.deserialize_value(r), default=str)}" for r in rows
        ]


def _rendered_fields(dag_id: str) -> list[str]:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(RenderedTaskInstanceFields).filter_by(dag_id=dag_id).all()
        return [f"{r.task_id}: {json.dumps(r.rendered_fields, default=str)}" for r in rows]


def test_no_canary_reaches_a_log_an_xcom_or_the_state_store(
    airflow_env: Any,
    ecs_env: Any,
    kube_env: Any,
    fault_proxy: Callable[[str], FaultProxy],
    postgres_server: PostgresServer,
    tmp_path: Any,
) -> None:
    c = {
        name: _canary(name)
        for name in (
            "ecsenv",
            "ecsenvplain",
            "ecsecho",
            "podenv",
            "podenvplain",
            "podecho",
            "awspassword",
            "awstoken",
            "kubepassword",
            "kubeextra",
            "storepassword",
        )
    }
    TALLY.add(canaries=len(c))

    # ECS: the main connection straight to moto, an "echo" one through a proxy that answers
    # every RunTask with an error repeating a secret of the request and the AWS password
    echo = fault_proxy(ecs_env.moto_url)
    echo.add_rule(
        ecs_error(
            "AccessDeniedException",
            f"User is not authorized to run a task with TOKEN={c['ecsecho']} signed by {c['awspassword']}",
        ),
        operation="RunTask",
    )
    kube_echo = fault_proxy(kube_env.cluster.server)
    kube_echo.add_rule(
        kube_error(
            422,
            "Invalid",
            f'Pod "x" is invalid: spec.containers[0].env[0].value: Invalid value: "{c["podecho"]}"',
        ),
        method="POST",
        path=r"/pods$",
    )
    echo_kubeconfig = proxied_kubeconfig(tmp_path / "echo.kubeconfig", kube_echo.url, kube_env.cluster.token)
    store_url = postgres_server.create_database("canaries")
    host_part = store_url.split("@", 1)[1]
    host, rest = host_part.split(":", 1)
    port, database = rest.split("/", 1)
    env = {
        "AIRFLOW__LOGGING__NAMESPACE_LEVELS": DEBUG_OURS,
        "AIRFLOW_CONN_AWS_DEFAULT": _aws_connection(ecs_env.moto_url, c["awspassword"], c["awstoken"]),
        "AIRFLOW_CONN_AWS_ECHO": _aws_connection(echo.url, c["awspassword"], c["awstoken"]),
        AIRFLOW_CONN_ENV: _kube_connection(
            str(kube_env.cluster.kubeconfig), kube_env.namespace, c["kubepassword"], c["kubeextra"]
        ),
        "AIRFLOW_CONN_KUBERNETES_ECHO": _kube_connection(
            str(echo_kubeconfig), kube_env.namespace, c["kubepassword"], c["kubeextra"]
        ),
        "AIRFLOW_CONN_COMPUTE_STATE_DEFAULT": json.dumps(
            {
                "conn_type": "postgres",
                "host": host,
                "port": int(port),
                "login": "compute",
                "password": c["storepassword"],
                "schema": database,
            }
        ),
    }

    ecs_common = {
        "operation": "canary",
        "cluster": CLUSTER_NAME,
        "task_definition": TASK_FAMILY,
        "launch_type": "FARGATE",
        "network_configuration": ecs_env.network_configuration,
        "poll_interval": 0.1,
        "retry_delay": Code("timedelta(0)"),
    }

    def environment(values: dict[str, str]) -> dict[str, Any]:
        pairs = [{"name": k, "value": v} for k, v in values.items()]
        return {"containerOverrides": [{"name": "main", "environment": pairs}]}

    ecs_env.script_tasks(
        TaskScript(outcome=exited(1)),
        count=None,
        where=lambda t: t.tags.get(ecs_tags.TENANT_ID_TAG) == "canary-ecs-failed",
    )
    kube_common = {
        "operation": "canary",
        "namespace": kube_env.namespace,
        "image": "busybox:1.36",
        "poll_interval": 0.1,
        "retry_delay": Code("timedelta(0)"),
    }
    tasks = [
        Task(
            "ecs_failed",
            "EcsComputeOperator",
            {
                **ecs_common,
                "tenant_id": "canary-ecs-failed",
                "deferrable": True,
                "overrides": environment({"DB_PASSWORD": c["ecsenv"], "GREETING": c["ecsenvplain"]}),
            },
        ),
        Task(
            "ecs_echo",
            "EcsComputeOperator",
            {
                **ecs_common,
                "tenant_id": "canary-ecs-echo",
                "aws_conn_id": "aws_echo",
                "overrides": environment({"TOKEN": c["ecsecho"]}),
            },
        ),
        Task(
            "kube_failed",
            "KubernetesComputeOperator",
            {
                **kube_common,
                "tenant_id": "canary-kube-failed",
                "deferrable": True,
                "annotations": {"sim.compute.test/script": "run:200ms,exit:1"},
                "env_vars": {"API_KEY": c["podenv"], "GREETING": c["podenvplain"]},
            },
        ),
        Task(
            "kube_echo",
            "KubernetesComputeOperator",
            {
                **kube_common,
                "tenant_id": "canary-kube-echo",
                "kubernetes_conn_id": "kubernetes_echo",
                "env_vars": {"SECRET": c["podecho"]},
            },
        ),
    ]

    child = airflow_env.run_dag_in_subprocess(compute_dag(DAG_ID, tasks), DAG_ID, env=env)
    child.wait(timeout=300)

    states = child.record.task_states()
    assert states == dict.fromkeys(("ecs_failed", "ecs_echo", "kube_failed", "kube_echo"), "failed"), (
        child.log_text()[-4000:]
    )
    errors = {task: child.record.xcom(task, key="compute_error")["code"] for task in states}
    assert errors == {
        "ecs_failed": "CONTAINER_FAILED",
        "ecs_echo": "PERMISSION_DENIED",
        "kube_failed": "CONTAINER_FAILED",
        "kube_echo": "INVALID_CONFIGURATION",
    }
    assert echo.counts["RunTask"] >= 1
    assert kube_echo.count(method="POST") >= 1

    lines = child.log_text().splitlines()
    places = {
        "log": lines,
        "xcom": _xcoms(DAG_ID),
        "rendered fields": _rendered_fields(DAG_ID),
        "state store": [
            row for rows in snapshot(_with_password(store_url, c["storepassword"])).values() for row in rows
        ],
    }
    for place, texts in places.items():
        assert texts, f"nothing captured in {place}"
    ours_at_debug = [line for line in lines if "[debug" in line and "airflow_compute_provider" in line]
    assert ours_at_debug, "this provider logged nothing at DEBUG"
    found = [
        f"{name} in {place}: {text[:3000]}"
        for place, texts in places.items()
        for text in texts
        for name, canary in c.items()
        if canary in text
    ]
    assert not found, "\n".join(found)


def _with_password(url: str, password: str) -> str:
    user, rest = url.split("://", 1)[1].split("@", 1)
    scheme = url.split("://", 1)[0]
    return f"{scheme}://{user}:{password}@{rest}"
