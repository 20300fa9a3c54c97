"""The argument models (``lifecycle/arguments.py``): each argument written once, and everything
the operators show of it derived from there.

Validation itself is exercised through the operators, by the fuzzer (``tests/reliability/
test_fuzz_inputs.py``) and by the invalid-argument tests; these check that the operators' other
faces (signature, defaults, docstrings, the typed arguments the lifecycle reads) come from the
model and cannot drift from it.
"""

from __future__ import annotations

import inspect
from datetime import timedelta
from typing import Any

import pytest

from airflow_compute_provider.errors import ComputeConfigError
from airflow_compute_provider.lifecycle.arguments import ComputeArguments, validate_arguments
from airflow_compute_provider.operators.base import BaseComputeOperator
from airflow_compute_provider.operators.ecs import EcsComputeOperator
from airflow_compute_provider.operators.kubernetes import KubernetesComputeOperator

OPERATORS = [BaseComputeOperator, EcsComputeOperator, KubernetesComputeOperator]


def _signature(operator: type[BaseComputeOperator]) -> dict[str, inspect.Parameter]:
    """Every keyword an operator takes, down its class chain to ``BaseComputeOperator``."""
    parameters: dict[str, inspect.Parameter] = {}
    for klass in operator.__mro__:
        if issubclass(klass, BaseComputeOperator):
            for name, p in inspect.signature(klass.__init__).parameters.items():
                if p.kind is p.KEYWORD_ONLY:
                    parameters.setdefault(name, p)
    return parameters


@pytest.mark.parametrize("operator", OPERATORS, ids=lambda o: o.__name__)
def test_every_argument_is_a_keyword_of_the_signature_with_the_models_default(operator: Any) -> None:
    # Airflow applies default_args only to the parameters of the signature
    model = operator.arguments_model
    signature = _signature(operator)
    assert set(model.model_fields) <= set(signature)
    for name, info in model.model_fields.items():
        if info.is_required():
            assert signature[name].default is inspect.Parameter.empty, name
        else:
            assert signature[name].default == getattr(model.DEFAULTS, name), name


@pytest.mark.parametrize(
    "operator", [EcsComputeOperator, KubernetesComputeOperator], ids=lambda o: o.__name__
)
def test_the_docstring_lists_each_own_argument_from_the_model(operator: Any) -> None:
    model = operator.arguments_model
    own = model.own_fields()
    assert own
    for name in own:
        assert f":param {name}: " in (operator.__doc__ or ""), name
    assert ":param tenant_id: " in (BaseComputeOperator.__doc__ or "")


def test_the_lifecycle_reads_typed_arguments() -> None:
    args = ComputeArguments.validated(
        {"tenant_id": "acme", "operation": "provision", "count": "3", "timeout": 90, "poll_interval": "2.5"}
    )
    assert (args.count, args.timeout, args.poll_interval) == (3, timedelta(seconds=90), 2.5)
    assert args.wait_for == ComputeArguments.DEFAULTS.wait_for == "completion"


def test_a_template_is_left_for_the_render_and_checked_after_it() -> None:
    values = {"tenant_id": "acme", "operation": "provision", "count": "{{ params.n }}"}
    assert validate_arguments(ComputeArguments, values, skip_templates=True)["count"] == "{{ params.n }}"
    with pytest.raises(ComputeConfigError) as refused:
        ComputeArguments.validated(values)
    assert refused.value.argument == "count"


@pytest.mark.parametrize(
    ("operator", "values", "argument"),
    [
        (
            BaseComputeOperator,
            {"timeout": timedelta(hours=2), "max_timeout": timedelta(hours=1)},
            "max_timeout",
        ),
        (EcsComputeOperator, {"launch_type": "FARGATE", "capacity_provider_strategy": []}, None),
        (
            EcsComputeOperator,
            {"launch_type": "FARGATE", "capacity_provider_strategy": [{"capacityProvider": "spot"}]},
            "capacity_provider_strategy",
        ),
        (KubernetesComputeOperator, {"namespace": "ns"}, "image"),
    ],
)
def test_rules_across_arguments_name_the_argument(
    operator: Any, values: dict[str, Any], argument: str | None
) -> None:
    base = {"tenant_id": "acme", "operation": "provision", "cluster": "c", "task_definition": "td"}
    values = {**base, **values}
    model = operator.arguments_model
    if argument is None:
        model.validated(values)
        return
    with pytest.raises(ComputeConfigError) as refused:
        model.validated(values)
    assert refused.value.argument == argument
