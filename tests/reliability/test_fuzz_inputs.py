"""Fuzzed input: every invalid argument is refused early and by name; no valid one is refused.

Hypothesis draws one argument at a time, from its valid or its invalid strategy
(``inputs.py``, whose rules are written from the documentation, not read from the product):

* operator arguments of ``EcsComputeOperator`` and ``KubernetesComputeOperator`` (tenant and
  execution ids, counts, durations, retry settings, ECS overrides, tags and capacity provider
  strategies, pod templates, env vars, labels...), as a DAG file builds them;
* ``ComputeRetryPolicy`` settings and rules, ``ComputeErrorBranchOperator`` routes;
* tenant and execution ids as the state store sees them;
* templated arguments, rendered by Airflow inside a real ``dag.test()`` run, checked by the
  operator at the start of ``execute``.

An invalid value must raise ``ComputeConfigError`` naming the argument and make no provider
request (the Airflow connections point at fault proxies that count every request). At DAG parse
time it leaves the tenant state store as it was (row for row); at run time it holds the tenant
for investigation with the error (requirement 2.2), its operations and ledger untouched, unless
the tenant id itself is the invalid value. A valid value must be accepted, and at run time the
operation must run to success against the provider.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from airflow_compute_provider.errors import ComputeConfigError
from airflow_compute_provider.lifecycle.arguments import ComputeArguments
from airflow_compute_provider.operators.branch import ComputeErrorBranchOperator
from airflow_compute_provider.operators.ecs import EcsComputeOperator
from airflow_compute_provider.operators.kubernetes import KubernetesComputeOperator
from airflow_compute_provider.policy import ComputeRetryPolicy
from airflow_compute_provider.state.status import TenantStatus
from tests.harness.ecs import CLUSTER_NAME, TASK_FAMILY, aws_connection_json
from tests.harness.proxy import FaultProxy
from tests.reliability import inputs
from tests.reliability.inputs import Field, names
from tests.reliability.tally import TALLY
from tests.unit.state.support import snapshot

pytestmark = [pytest.mark.reliability, pytest.mark.airflow]

FUZZ = settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


@dataclass(frozen=True)
class Drawn:
    argument: str
    valid: bool
    value: Any


def _draw(data: Any, fields: dict[str, Field]) -> Drawn:
    argument = data.draw(st.sampled_from(sorted(fields)), label="argument")
    valid = data.draw(st.booleans(), label="valid")
    field = fields[argument]
    value = data.draw(field.valid if valid else field.invalid, label="value")
    return Drawn(argument, valid, value)


def _judge(drawn: Drawn, build: Callable[[], object]) -> None:
    """Build with the drawn value: accepted when valid, refused by name when not."""
    TALLY.add(inputs=1)
    if drawn.valid:
        try:
            build()
        except ComputeConfigError as exc:
            pytest.fail(f"valid {drawn.argument}={drawn.value!r} refused: {exc}")
        return
    refusal: BaseException | None = None
    try:
        build()
    except Exception as exc:
        refusal = exc
    what = f"invalid {drawn.argument}={drawn.value!r}"
    if refusal is None:
        pytest.fail(f"{what} was accepted")
    if not isinstance(refusal, ComputeConfigError):
        pytest.fail(f"{what} raised {type(refusal).__name__}, not ComputeConfigError: {refusal}")
    assert names(refusal.argument, drawn.argument), f"{what} refused as {refusal.argument!r}: {refusal}"


@pytest.fixture
def counted(
    ecs_proxied: FaultProxy, kube_proxied: FaultProxy, default_state_url: str
) -> tuple[FaultProxy, FaultProxy, str]:
    """Both providers behind counting proxies, and the state store's URL for snapshots."""
    return ecs_proxied, kube_proxied, default_state_url


def _untouched(counted: tuple[FaultProxy, FaultProxy, str], before: dict[str, list[str]]) -> None:
    ecs, kube, url = counted
    assert ecs.counts.total == 0, f"ECS requests: {ecs.counts}"
    assert kube.counts.total == 0, f"Kubernetes requests: {kube.counts}"
    assert snapshot(url) == before


_ECS_BASE = {
    "tenant_id": "fuzz",
    "operation": "fuzz",
    "cluster": CLUSTER_NAME,
    "task_definition": TASK_FAMILY,
}
_KUBE_BASE = {"tenant_id": "fuzz", "operation": "fuzz", "namespace": "fuzz", "image": "busybox:1.36"}


def test_fuzzed_operator_arguments_are_refused_by_name_before_any_request(counted: Any) -> None:
    before = snapshot(counted[2])

    @FUZZ
    @given(data=st.data())
    def ecs(data: Any) -> None:
        drawn = _draw(data, {**inputs.COMMON, **inputs.ECS})
        kwargs = {**_ECS_BASE, drawn.argument: drawn.value}
        _judge(drawn, lambda: EcsComputeOperator(task_id="fuzzed", **kwargs))

    @FUZZ
    @given(data=st.data())
    def kubernetes(data: Any) -> None:
        drawn = _draw(data, {**inputs.COMMON, **inputs.KUBERNETES})
        kwargs = {**_KUBE_BASE, drawn.argument: drawn.value}
        if drawn.argument == "image" and drawn.valid and drawn.value is None:
            kwargs["pod_template"] = {"spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}}
        _judge(drawn, lambda: KubernetesComputeOperator(task_id="fuzzed", **kwargs))

    ecs()
    kubernetes()
    _untouched(counted, before)


def test_fuzzed_retry_policies_and_routes_are_refused_by_name(counted: Any) -> None:
    before = snapshot(counted[2])

    @FUZZ
    @given(data=st.data())
    def policy(data: Any) -> None:
        drawn = _draw(data, inputs.POLICY)
        _judge(drawn, lambda: ComputeRetryPolicy(**{drawn.argument: drawn.value}))

    @FUZZ
    @given(data=st.data())
    def routes(data: Any) -> None:
        drawn = _draw(data, {"routes": inputs.ROUTES})
        _judge(
            drawn,
            lambda: ComputeErrorBranchOperator(
                task_id="route", compute_task_id="provision", routes=drawn.value
            ),
        )

    policy()
    routes()
    _untouched(counted, before)


def test_fuzzed_tenant_and_execution_ids_never_reach_the_store(
    state_store: Any, default_state_url: str
) -> None:
    @FUZZ
    @given(data=st.data())
    def keys(data: Any) -> None:
        drawn = _draw(data, {"tenant_id": inputs.TENANT_IDS, "execution_id": inputs.EXECUTION_IDS})
        ids = {"tenant_id": "fuzz-store", "execution_id": "fuzz:execution", drawn.argument: drawn.value}
        before = snapshot(default_state_url)

        def begin() -> None:
            state_store.begin_operation(ids["tenant_id"], ids["execution_id"], "fuzz", "ecs", 1)
            state_store.finish_operation(ids["tenant_id"], ids["execution_id"], None, will_retry=False)

        _judge(drawn, begin)
        if not drawn.valid:
            assert snapshot(default_state_url) == before

    keys()


# -- at run time: templated arguments, rendered by Airflow ---------------------------------------------

_TEMPLATED: dict[str, Field] = {
    "tenant_id": Field(
        inputs.TENANT_IDS.valid,
        inputs.TENANT_IDS.invalid.filter(lambda v: isinstance(v, str) and v != "None"),
    ),
    "operation": Field(
        st.text("abcdefghijklmnopqrstuvwxyz -_:.", min_size=1, max_size=40).filter(str.strip),
        st.sampled_from(["", "   ", "a\nb", "x\x07y", "o" * 251]),
    ),
    "execution_id": Field(
        st.text("abcdefghijklmnopqrstuvwxyz0123456789 -_:.+", min_size=1, max_size=80).filter(str.strip),
        st.sampled_from(["", "  ", "a\nb", "x\x1by", "e" * 1001]),
    ),
    "count": Field(
        st.integers(1, 2).map(str), st.sampled_from(["0", "-1", "1001", "abc", "1.5", "", "True"])
    ),
    "cluster": Field(st.just(CLUSTER_NAME), st.sampled_from(["", "c" * 2049])),
    "task_definition": Field(st.just(TASK_FAMILY), st.sampled_from(["", "t" * 2049])),
}

_RUN_TIME_DAG = """\
from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow_compute_provider.operators.ecs import EcsComputeOperator

with DAG({dag_id!r}, start_date=datetime(2026, 1, 1), schedule=None, catchup=False, params={params!r}) as dag:
{tasks}
"""


def _task(number: int, tenant_id: str, drawn: Drawn, network: dict[str, Any]) -> str:
    arguments: dict[str, Any] = {
        "tenant_id": tenant_id,
        "operation": "fuzz",
        "cluster": CLUSTER_NAME,
        "task_definition": TASK_FAMILY,
        "launch_type": "FARGATE",
        "network_configuration": network,
        "poll_interval": 0.1,
        # the invalid ones reach a proxy of their own: any request from them is counted there
        "aws_conn_id": "aws_default" if drawn.valid else "aws_fuzz",
        drawn.argument: f"{{{{ params.v{number} }}}}",
    }
    lines = "\n".join(f"        {k}={v!r}," for k, v in arguments.items())
    return f"    EcsComputeOperator(\n        task_id='t{number}',\n{lines}\n    )"


def _history(store: Any, tenant_id: str) -> tuple[Any, ...]:
    return (
        store.get_tenant(tenant_id),
        store.operations(tenant_id),
        store.transitions(tenant_id),
        store.list_resources(tenant_id=tenant_id),
    )


BATCH = 14


def test_fuzzed_templated_arguments_fail_the_task_before_any_request(
    airflow_env: Any,
    ecs_env: Any,
    ecs_proxied: FaultProxy,
    fault_proxy: Callable[[str], FaultProxy],
    state_store: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    invalid_proxy = fault_proxy(ecs_env.moto_url)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_FUZZ", aws_connection_json(invalid_proxy.url))
    batches: list[int] = []

    # each example is a whole DAG run of BATCH tasks; no shrinking (it would rerun DAGs)
    @settings(max_examples=2, deadline=None, derandomize=True, phases=[Phase.generate])
    @given(data=st.data())
    def batch(data: Any) -> None:
        drawn = [_draw(data, _TEMPLATED) for _ in range(BATCH)]
        number = len(batches)
        batches.append(number)
        tenants = [
            d.value if d.argument == "tenant_id" else f"fuzz-run-{number}-{i}" for i, d in enumerate(drawn)
        ]
        # the tenant of every invalid task has a history already, which must stay as it is, but
        # for the hold for investigation that the invalid configuration adds (requirement 2.2)
        kept = [t for t, d in zip(tenants, drawn, strict=True) if not d.valid and d.argument != "tenant_id"]
        for tenant in kept:
            state_store.begin_operation(tenant, "earlier", "fuzz", "ecs", 1)
            state_store.finish_operation(tenant, "earlier", None, will_retry=False)
        histories = {t: _history(state_store, t) for t in kept}
        known = {t.tenant_id for t in state_store.list_tenants()}
        params = {f"v{i}": d.value for i, d in enumerate(drawn)}
        network = ecs_env.network_configuration
        tasks = "\n".join(
            _task(i, t, d, network) for i, (t, d) in enumerate(zip(tenants, drawn, strict=True))
        )
        dag_id = f"fuzz_run_{number}"
        source = _RUN_TIME_DAG.format(dag_id=dag_id, params=params, tasks=tasks)
        when = datetime(2026, 9, 1, tzinfo=UTC) + timedelta(days=number)

        run = airflow_env.run_dag(source, dag_id, logical_date=when)

        states = run.task_states()
        tries = run.try_numbers()
        TALLY.add(inputs=len(drawn), operations=sum(d.valid for d in drawn))
        for i, d in enumerate(drawn):
            task = f"t{i}"
            if d.valid:
                assert states[task] == "success", (d, run.xcom(task, key="compute_error"))
                continue
            assert states[task] == "failed", d
            error = run.xcom(task, key="compute_error")
            assert error["code"] == "INVALID_CONFIGURATION", (d, error)
            assert error["root_cause"]["reason"] == d.argument, (d, error)
            assert tries[task] == 1, "an invalid argument is never retried"
        assert invalid_proxy.counts.total == 0, (
            f"requests from tasks with invalid arguments: {invalid_proxy.counts}"
        )
        valid = {t for t, d in zip(tenants, drawn, strict=True) if d.valid}
        assert {t.tenant_id for t in state_store.list_tenants()} == known | valid
        for (tenant, history), d in zip(
            histories.items(), [d for d in drawn if not d.valid and d.argument != "tenant_id"], strict=True
        ):
            held, operations, transitions, resources = _history(state_store, tenant)
            assert (operations, resources) == history[1:2] + history[3:], f"tenant {tenant}: a try began"
            assert held.status is TenantStatus.NEEDS_INVESTIGATION, (tenant, d)
            assert held.note.startswith("INVALID_CONFIGURATION: "), held.note
            assert transitions[1:] == history[2], f"tenant {tenant}: its history changed"
            assert (transitions[0].from_status, transitions[0].to_status) == (
                TenantStatus.READY,
                TenantStatus.NEEDS_INVESTIGATION,
            )

    batch()
    assert batches, "no batch ran"


# -- canaries: a refused value is never echoed ---------------------------------------------------------

_CANARY = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=8, max_size=12).map(lambda s: f"canary{s}")
_COMMON = set(ComputeArguments.model_fields)
_KUBE_ONLY = set(KubernetesComputeOperator.arguments_model.own_fields())
_ECS_ONLY = set(EcsComputeOperator.arguments_model.own_fields())


def _echoes(canary: str, *texts: str) -> bool:
    return any(canary.lower() in text.lower() for text in texts)


def test_every_operator_argument_has_canaries() -> None:
    assert set(inputs.CANARIES) >= _COMMON | _ECS_ONLY | _KUBE_ONLY


def test_a_refused_value_is_never_echoed_by_its_error(counted: Any) -> None:
    """The message names the argument, the rule and the type; the canary inside the value (an
    env var, an override, a pod template...) appears nowhere in the error."""
    before = snapshot(counted[2])

    @FUZZ
    @given(data=st.data())
    def canary(data: Any) -> None:
        argument = data.draw(st.sampled_from(sorted(inputs.CANARIES)), label="argument")
        token = data.draw(_CANARY, label="canary")
        value = data.draw(st.sampled_from(inputs.CANARIES[argument](token)), label="value")
        kube = argument in _KUBE_ONLY or (
            argument not in _ECS_ONLY and data.draw(st.booleans(), label="kube")
        )
        TALLY.add(inputs=1)

        def build() -> object:
            if kube:
                return KubernetesComputeOperator(task_id="canary", **{**_KUBE_BASE, argument: value})
            return EcsComputeOperator(task_id="canary", **{**_ECS_BASE, argument: value})

        with pytest.raises(ComputeConfigError) as refused:
            build()
        error = refused.value
        assert names(error.argument, argument), f"{argument} refused as {error.argument!r}: {error}"
        message = str(error)
        assert not _echoes(token, message, error.error.model_dump_json()), f"{argument} echoed: {message}"

    canary()
    _untouched(counted, before)


_CANARY_DAG = """\
from datetime import datetime

from airflow.sdk import DAG

from airflow_compute_provider.operators.ecs import EcsComputeOperator

with DAG({dag_id!r}, start_date=datetime(2026, 1, 1), schedule=None, catchup=False, params={params!r},
         render_template_as_native_obj=True):
{tasks}
"""
#: the ECS operator's templated arguments: rendered at run time, checked at the start of execute
_TEMPLATED_CANARIES = ("tenant_id", "operation", "execution_id", "count", "cluster", "task_definition",
                       "overrides", "network_configuration", "tags")  # fmt: skip


def test_templated_canaries_reach_no_message_xcom_row_or_log(
    airflow_env: Any, ecs_env: Any, fault_proxy: Callable[[str], FaultProxy], state_store: Any,
    default_state_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Each templated argument of a real ``dag.test()`` run (in a child, whose output is the task
    log) renders to an invalid value carrying a canary; the tasks fail INVALID_CONFIGURATION and
    the canary is in no XCom, no state store row and no line of the log."""
    proxy = fault_proxy(ecs_env.moto_url)
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", aws_connection_json(proxy.url))
    token = f"canary{secrets.token_hex(5)}"
    params: dict[str, Any] = {}
    tasks: list[str] = []
    for i, argument in enumerate(_TEMPLATED_CANARIES):
        params[f"v{i}"] = inputs.CANARIES[argument](token)[0]
        arguments = {**_ECS_BASE, "tenant_id": f"canary-{i}", "launch_type": "FARGATE",
                     argument: f"{{{{ params.v{i} }}}}"}  # fmt: skip
        lines = "\n".join(f"        {k}={v!r}," for k, v in arguments.items())
        tasks.append(f"    EcsComputeOperator(\n        task_id='t{i}',\n{lines}\n    )")
    source = _CANARY_DAG.format(dag_id="fuzz_canaries", params=params, tasks="\n".join(tasks))
    child = airflow_env.run_dag_in_subprocess(source, "fuzz_canaries")
    child.wait(timeout=300)
    states = child.record.task_states()
    assert set(states.values()) == {"failed"}, child.log_text()[-4000:]
    xcoms = [
        json.dumps(child.record.xcom(f"t{i}", key="compute_error")) for i in range(len(_TEMPLATED_CANARIES))
    ]
    for i, argument in enumerate(_TEMPLATED_CANARIES):
        error = json.loads(xcoms[i])
        assert (error["code"], error["root_cause"]["reason"]) == ("INVALID_CONFIGURATION", argument), error
    assert proxy.counts.total == 0
    TALLY.add(inputs=len(_TEMPLATED_CANARIES))
    rows = [row for table in snapshot(default_state_url).values() for row in table]
    log = child.log_text()
    assert "INVALID_CONFIGURATION" in log
    places = {"xcom": xcoms, "state store": rows, "log": log.splitlines()}
    found = [
        f"{place}: {text[:500]}" for place, texts in places.items() for text in texts if _echoes(token, text)
    ]
    assert not found, "\n".join(found)
