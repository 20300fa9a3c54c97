"""``scripts/stack`` and ``docker-compose.yml`` describe one deployment: the same services, the
same commands and the same Airflow settings. The stack reads compose's settings from the file
(``tests/harness/celery_stack.py``), so this checks that the reading stays complete: every
compose service is run by the stack (or stood in for, and said how), every Airflow command is
the one compose runs, and every compose setting reaches the stack's processes with only its
container host names and paths moved to this machine.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.harness.celery_stack import (
    AIRFLOW_SERVICES,
    OTHER_SERVICES,
    CeleryStack,
    Ports,
    compose_airflow_environment,
    compose_services,
)

#: what only exists inside compose's network: none of it may reach a process of the stack
_CONTAINER_NAMES = re.compile(
    r"(//|@)(postgres|redis|moto|airflow-apiserver|k3s)[:/]"
    r"|\"host\": \"(postgres|redis)\"|/opt/airflow|/kube/"
)


def _stack(tmp_path: Path) -> CeleryStack:
    stack = CeleryStack(tmp_path / "home", api_port=18999, clouds=True)
    stack.ports = Ports(
        api=18999,
        postgres=15432,
        redis=16379,
        moto=15000,
        scheduler_health=18974,
        worker_logs=[18793, 18794],
        trigger_logs=[18795, 18796],
    )
    return stack


def test_every_compose_service_is_run_by_the_stack() -> None:
    compose = set(compose_services())
    covered = set(AIRFLOW_SERVICES) | set(OTHER_SERVICES)
    assert compose == covered, f"only in compose: {compose - covered}; only in the stack: {covered - compose}"


def test_the_airflow_components_run_compose_commands(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    services = compose_services()
    names = stack.service_names()
    for service, args in AIRFLOW_SERVICES.items():
        assert services[service]["command"] == ["airflow", *args], service
        ours = [n for n in names if n.split("-")[0] in service or n == args[0]]
        assert ours, f"the stack runs nothing for {service}"
        for name in ours:
            argv = stack._airflow_argv(name)
            assert argv[3 : 3 + len(args)] == list(args), (service, argv)
    # the distributed part: two of each, as the issue asks
    assert sum(n.startswith("worker-") for n in names) == 2
    assert sum(n.startswith("triggerer-") for n in names) == 2


def test_every_compose_setting_reaches_the_stack_moved_to_this_machine(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    compose = compose_airflow_environment()
    for name in stack.service_names()[3:]:  # the Airflow components
        env = stack._component_env(name)
        for key, value in compose.items():
            assert key in env, f"{name} lacks {key}"
            moved = env[key]
            assert not _CONTAINER_NAMES.search(moved), f"{name}: {key}={moved} names a container"
            if not _CONTAINER_NAMES.search(value):
                assert moved == value, f"{name}: {key} differs from compose ({moved!r} != {value!r})"
    env = stack.environment()
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://127.0.0.1:16379/0"
    assert "127.0.0.1:15432/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert '"port": 15432' in env["AIRFLOW_CONN_COMPUTE_STATE_DEFAULT"]
    # two workers and two triggerers on one host: each serves its logs on its own port
    ports = {
        stack._component_env(n).get("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT")
        or stack._component_env(n).get("AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT")
        for n in stack.service_names()
        if n.startswith(("worker-", "triggerer-"))
    }
    assert len(ports) == 4
