"""The operators' extra links: console URLs from task ARNs and pod names, the units they pick,
and their registration as Airflow serializes the DAG (what the UI's link buttons come from)."""

from __future__ import annotations

import pytest

from airflow_compute_provider.hooks.base import Unit
from airflow_compute_provider.links import (
    EcsTaskConsoleLink,
    KubernetesPodLink,
    LinkUnit,
    ecs_console_url,
    kubernetes_pod_url,
    units_from_xcoms,
    units_of,
)
from airflow_compute_provider.operators.ecs import EcsComputeOperator
from airflow_compute_provider.operators.kubernetes import KubernetesComputeOperator

TASK_ARN = "arn:aws:ecs:eu-west-1:123456789012:task/tenants/0123456789abcdef0123456789abcdef"
CONSOLE = "https://eu-west-1.console.aws.amazon.com/ecs/v2/clusters/tenants/tasks"


def test_one_task_links_to_its_console_page() -> None:
    assert ecs_console_url([TASK_ARN], cluster="ignored") == (
        f"{CONSOLE}/0123456789abcdef0123456789abcdef/configuration?region=eu-west-1"
    )


def test_several_tasks_link_to_the_clusters_task_list() -> None:
    other = TASK_ARN.replace("0123", "4567")
    assert ecs_console_url([TASK_ARN, other], cluster="tenants") == f"{CONSOLE}?region=eu-west-1"


def test_an_old_format_arn_takes_the_cluster_from_the_operator() -> None:
    old = "arn:aws:ecs:us-east-1:123456789012:task/abc123"
    url = ecs_console_url([old], cluster="arn:aws:ecs:us-east-1:123456789012:cluster/batch")
    assert url == (
        "https://us-east-1.console.aws.amazon.com/ecs/v2/clusters/batch/tasks/abc123/configuration"
        "?region=us-east-1"
    )


@pytest.mark.parametrize(
    ("partition", "host"),
    [
        ("aws-cn", "https://cn-north-1.console.amazonaws.cn/"),
        ("aws-us-gov", "https://console.amazonaws-us-gov.com/"),
    ],
)
def test_other_partitions_use_their_console(partition: str, host: str) -> None:
    arn = f"arn:{partition}:ecs:cn-north-1:123456789012:task/c/t1"
    assert ecs_console_url([arn], cluster="c").startswith(host)


def test_no_url_without_a_region_or_a_cluster() -> None:
    assert ecs_console_url(["t1"], cluster="c") == ""
    assert ecs_console_url([], cluster="c", region="us-east-1") == ""
    assert ecs_console_url(["t1"], cluster="c", region="us-east-1").endswith(
        "/clusters/c/tasks/t1/configuration?region=us-east-1"
    )


def test_a_pod_link_follows_the_configured_template() -> None:
    url = kubernetes_pod_url(
        "tenant-a",
        "cx0123-0-g1",
        template="https://headlamp.example/c/main/pods/{namespace}/{name}",
    )
    assert url == "https://headlamp.example/c/main/pods/tenant-a/cx0123-0-g1"


def test_without_a_template_a_pod_link_opens_the_compute_health_lookup() -> None:
    assert kubernetes_pod_url("ns", "pod-0", airflow_base_url="https://airflow.example/team-a/") == (
        "/team-a/compute-health/?namespace=ns&resource=pod-0"
    )
    assert (
        kubernetes_pod_url("ns", "a b", airflow_base_url=None)
        == "/compute-health/?namespace=ns&resource=a%20b"
    )
    assert kubernetes_pod_url("", "pod-0") == ""


def test_units_come_from_the_success_result_or_the_error_report() -> None:
    result = {
        "execution_id": "x",
        "units": [{"index": 1, "resource_id": "b"}, {"index": 0, "resource_id": "a"}],
    }
    assert units_from_xcoms(result, None) == [LinkUnit(0, "a"), LinkUnit(1, "b")]
    error = {
        "code": "PARTIAL_FAILURE",
        "units": {
            "running": [{"index": 0, "resource_id": "a"}],
            "pending": [],
            "succeeded": [],
            # refused at launch: nothing to link to
            "failed": [{"index": 1, "resource_id": None, "error": {"code": "INSUFFICIENT_CAPACITY"}}],
        },
    }
    assert units_from_xcoms(None, error) == [LinkUnit(0, "a")]
    assert units_from_xcoms(None, None) == []


def _ecs_operator() -> EcsComputeOperator:
    return EcsComputeOperator(
        task_id="provision", tenant_id="t", operation="provision", cluster="tenants", task_definition="td"
    )


def test_the_operators_watched_units_come_first() -> None:
    operator = _ecs_operator()
    # what _launch_and_wait records as the units it watches
    operator._watching = [Unit(1, 2, TASK_ARN.replace("0123", "9999")), Unit(0, 1, TASK_ARN)]
    units = units_of(operator, ti_key=None)  # no XCom read: the operator knows its units
    assert [u.index for u in units] == [0, 1]
    assert EcsTaskConsoleLink().url_for(operator, units) == f"{CONSOLE}?region=eu-west-1"
    assert EcsTaskConsoleLink().url_for(operator, units[:1]).startswith(f"{CONSOLE}/0123")


def test_the_kubernetes_link_uses_the_rendered_namespace() -> None:
    operator = KubernetesComputeOperator(
        task_id="provision", tenant_id="t", operation="provision", namespace="tenant-a", image="busybox"
    )
    url = KubernetesPodLink().url_for(operator, [LinkUnit(0, "cx01-0-g1"), LinkUnit(1, "cx01-1-g1")])
    assert url.endswith("compute-health/?namespace=tenant-a&resource=cx01-0-g1")
    assert KubernetesPodLink().url_for(operator, []) == ""


def test_airflow_serializes_the_links_with_the_operators() -> None:
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    with DAG("links", schedule=None) as dag:
        _ecs_operator()
        KubernetesComputeOperator(
            task_id="pod", tenant_id="t", operation="provision", namespace="ns", image="busybox"
        )
    tasks = {t["__var"]["task_id"]: t["__var"] for t in DagSerialization.to_dict(dag)["dag"]["tasks"]}
    assert tasks["provision"]["_operator_extra_links"] == {"ECS task": "_link_EcsTaskConsoleLink"}
    assert tasks["pod"]["_operator_extra_links"] == {"Kubernetes pod": "_link_KubernetesPodLink"}
