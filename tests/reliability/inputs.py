"""Hypothesis strategies for every argument a DAG author gives, each split into valid and invalid.

    Field(valid, invalid)   two strategies for one argument; which one drew a value is the
                            oracle: the product must accept every valid value and refuse every
                            invalid one with ``ComputeConfigError`` naming the argument
    COMMON, ECS, KUBERNETES the operators' arguments
    POLICY, RULE            ``ComputeRetryPolicy`` and its ``Retry`` rule
    ROUTES                  ``ComputeErrorBranchOperator(routes=...)``
    TENANT_IDS, EXECUTION_IDS
                            what the state store accepts as keys
    names(error, argument)  whether an error names the argument (or a part of it:
                            ``rules.PROVIDER_THROTTLED``, ``routes['retriable']``)

The rules of what is valid are written here from the operators' documentation (tenant ids are
DNS labels, counts 1 to 1000, durations positive...), not read from the product, so a check the
product lost shows up as an invalid value it accepted. Free text never holds ``{{`` or ``{%``:
those are Jinja templates, checked once rendered (``test_fuzzed_inputs`` renders some).
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hypothesis import strategies as st

from airflow_compute_provider.errors import Classification, ErrorCode

TENANT_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
DNS_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Field:
    valid: st.SearchStrategy[Any]
    invalid: st.SearchStrategy[Any]


def names(argument: str | None, wanted: str) -> bool:
    return argument is not None and (
        argument == wanted or argument.startswith(f"{wanted}.") or argument.startswith(f"{wanted}[")
    )


def _no_template(text: str) -> bool:
    return "{{" not in text and "{%" not in text


def _plain_text(max_size: int) -> st.SearchStrategy[str]:
    """Single-line text without control characters, not blank: what the store calls text."""
    return st.text(
        st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=max_size
    ).filter(lambda s: s.strip() and not CONTROL.search(s) and _no_template(s))


def _bad_text(max_size: int) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.just(""),
        st.text(" \t", min_size=1, max_size=5),
        _plain_text(20).map(lambda s: s + "\n" + s),
        _plain_text(20).map(lambda s: s + "\x00"),
        st.text(string.ascii_letters, min_size=max_size + 1, max_size=max_size + 40),
        st.integers(),
        st.lists(st.text(max_size=3), max_size=2),
    )


_NOT_A_STRING = st.one_of(
    st.integers(), st.floats(allow_nan=False), st.booleans(), st.lists(st.integers(), max_size=2)
)

# -- tenant and execution ids --------------------------------------------------------------------

TENANT_IDS = Field(
    valid=st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\Z"),
    invalid=st.one_of(
        # label injection, path traversal, selectors, case, length, edges, whitespace
        st.sampled_from(
            [
                "",
                "-a",
                "a-",
                "A",
                "tenant_1",
                "tenant.1",
                "a\n",
                "../etc",
                "a/../../b",
                "a,b=c",
                "a=b",
                "a!=b",
                "app in (x)",
                "a b",
                "x" * 64,
                "é",
            ]
        ),
        st.text(min_size=1, max_size=70).filter(lambda s: TENANT_RE.fullmatch(s) is None and _no_template(s)),
        _NOT_A_STRING,
        st.none(),
    ),
)

EXECUTION_IDS = Field(valid=_plain_text(1000), invalid=_bad_text(1000))

# -- the operators' common arguments ------------------------------------------------------------------

_POSITIVE_DURATION = st.timedeltas(min_value=timedelta(milliseconds=1), max_value=timedelta(days=30))


def _finite(low: float, high: float) -> st.SearchStrategy[float]:
    return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)


_NOT_A_NUMBER = st.one_of(st.booleans(), st.text(string.ascii_letters, min_size=1, max_size=5), st.none())

COMMON: dict[str, Field] = {
    "tenant_id": TENANT_IDS,
    "operation": Field(_plain_text(250), _bad_text(250)),
    "execution_id": Field(st.one_of(st.none(), _plain_text(1000)), _bad_text(1000)),
    "count": Field(
        st.one_of(st.integers(1, 1000), st.integers(1, 1000).map(str)),
        st.one_of(
            st.integers(max_value=0),
            st.integers(min_value=1001),
            st.booleans(),
            st.floats(1.1, 999.9).filter(lambda f: not f.is_integer()),
            st.text(string.ascii_letters, min_size=1, max_size=4),
            st.none(),
        ),
    ),
    "wait_for": Field(
        st.sampled_from(["completion", "running"]),
        st.text(max_size=12).filter(lambda s: s not in ("completion", "running") and _no_template(s)),
    ),
    "timeout": Field(_POSITIVE_DURATION, st.one_of(st.timedeltas(max_value=timedelta(0)), _NOT_A_NUMBER)),
    "timeout_factor": Field(
        _finite(1.0, 100.0),
        st.one_of(
            _finite(-1e6, 0.999),
            _finite(100.001, 1e9),
            st.just(math.nan),
            st.just(math.inf),
            _NOT_A_NUMBER.filter(lambda v: v is not None),
        ),
    ),
    "on_partial_failure": Field(
        st.sampled_from(["rollback", "retry_failed"]),
        st.text(max_size=12).filter(lambda s: s not in ("rollback", "retry_failed") and _no_template(s)),
    ),
    "on_kill_action": Field(
        st.sampled_from(["keep", "stop"]),
        st.text(max_size=8).filter(lambda s: s not in ("keep", "stop") and _no_template(s)),
    ),
    "poll_interval": Field(
        _finite(0.001, 3600.0),
        st.one_of(_finite(-1e6, 0.0), _finite(3600.001, 1e9), st.just(math.nan), _NOT_A_NUMBER),
    ),
    "pending_grace_period": Field(
        st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=1)),
        st.one_of(st.timedeltas(max_value=timedelta(microseconds=-1)), _NOT_A_NUMBER),
    ),
    # the default timeout is one hour: a cap below it is refused
    "max_timeout": Field(
        st.one_of(st.none(), st.timedeltas(min_value=timedelta(hours=1), max_value=timedelta(days=30))),
        st.one_of(
            st.timedeltas(min_value=timedelta(milliseconds=1), max_value=timedelta(minutes=59)),
            st.timedeltas(max_value=timedelta(0)),
        ),
    ),
    "state_conn_id": Field(_plain_text(250), _bad_text(250)),
}

# -- ECS ------------------------------------------------------------------------------------------

_TAGS = st.dictionaries(
    st.text(string.ascii_letters + "-_", min_size=1, max_size=20).filter(
        lambda k: not k.startswith("compute.")
    ),
    st.text(string.ascii_letters + string.digits, max_size=20),
    max_size=5,
)
_OVERRIDES = st.fixed_dictionaries(
    {
        "containerOverrides": st.lists(
            st.fixed_dictionaries(
                {
                    "name": st.just("main"),
                    "environment": st.lists(
                        st.fixed_dictionaries(
                            {"name": st.from_regex(r"\A[A-Z_]{1,10}\Z"), "value": st.text(max_size=20)}
                        ),
                        max_size=3,
                    ),
                }
            ),
            max_size=1,
        )
    }
)

ECS: dict[str, Field] = {
    "cluster": Field(
        st.text(string.ascii_letters + string.digits + "-_:/", min_size=1, max_size=100),
        st.one_of(
            st.just(""), st.text(string.ascii_letters, min_size=2049, max_size=2060), _NOT_A_STRING, st.none()
        ),
    ),
    "task_definition": Field(
        st.text(string.ascii_letters + string.digits + "-_:/", min_size=1, max_size=100),
        st.one_of(
            st.just(""), st.text(string.ascii_letters, min_size=2049, max_size=2060), _NOT_A_STRING, st.none()
        ),
    ),
    "launch_type": Field(
        st.sampled_from(["FARGATE", "EC2", "EXTERNAL", None]),
        st.text(max_size=10).filter(lambda s: s not in ("FARGATE", "EC2", "EXTERNAL") and _no_template(s)),
    ),
    "capacity_provider_strategy": Field(
        st.one_of(
            st.none(),
            st.lists(
                st.fixed_dictionaries(
                    {
                        "capacityProvider": st.sampled_from(["FARGATE", "FARGATE_SPOT"]),
                        "weight": st.integers(0, 10),
                    }
                ),
                min_size=1,
                max_size=2,
            ),
        ),
        st.one_of(
            st.lists(st.fixed_dictionaries({"weight": st.integers(0, 10)}), min_size=1, max_size=2),
            st.lists(st.fixed_dictionaries({"capacityProvider": st.just("")}), min_size=1, max_size=1),
            st.lists(st.integers(), min_size=1, max_size=2),
            st.integers(),
            st.text(string.ascii_letters, min_size=1, max_size=5),
        ),
    ),
    "tags": Field(
        st.one_of(st.none(), _TAGS),
        st.one_of(
            st.lists(st.integers(), min_size=1, max_size=3),
            st.integers(),
            st.text(string.ascii_letters, min_size=1),
        ),
    ),
    "overrides": Field(
        st.one_of(st.none(), _OVERRIDES),
        st.one_of(
            st.lists(st.integers(), max_size=2),
            st.integers(),
            st.text(min_size=1, max_size=5).filter(_no_template),
        ),
    ),
    "network_configuration": Field(
        st.one_of(st.none(), st.just({"awsvpcConfiguration": {"subnets": ["subnet-1"]}})),
        st.one_of(
            st.lists(st.integers(), max_size=2),
            st.integers(),
            st.text(min_size=1, max_size=5).filter(_no_template),
        ),
    ),
    "platform_version": Field(
        st.one_of(st.none(), st.sampled_from(["LATEST", "1.4.0"])),
        st.one_of(st.just(""), st.text(string.ascii_letters, min_size=65, max_size=70), _NOT_A_STRING),
    ),
}

# -- Kubernetes -------------------------------------------------------------------------------------

_DNS_LABEL = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
_CONTAINER = st.fixed_dictionaries({"name": st.just("main"), "image": st.just("busybox:1.36")})

KUBERNETES: dict[str, Field] = {
    "namespace": Field(
        _DNS_LABEL,
        st.one_of(
            st.sampled_from(["", "Default", "kube_system", "-ns", "ns-", "a" * 64, "../x", "ns/x"]),
            st.text(max_size=70).filter(lambda s: TENANT_RE.fullmatch(s) is None and _no_template(s)),
            _NOT_A_STRING,
            st.none(),
        ),
    ),
    "image": Field(
        st.one_of(
            st.none(), st.sampled_from(["busybox:1.36", "registry.example/team/app@sha256:" + "a" * 64])
        ),
        st.one_of(st.just(""), st.text(string.ascii_letters, min_size=4097, max_size=4100), _NOT_A_STRING),
    ),
    "cmds": Field(
        st.one_of(st.none(), st.lists(st.text(max_size=10).filter(_no_template), max_size=3)),
        st.one_of(
            st.lists(st.integers(), min_size=1, max_size=3),
            st.integers(),
            st.dictionaries(st.text(max_size=3), st.integers(), min_size=1, max_size=2),
        ),
    ),
    "env_vars": Field(
        st.one_of(
            st.none(),
            st.dictionaries(
                st.from_regex(r"\A[A-Z_]{1,8}\Z"), st.text(max_size=10).filter(_no_template), max_size=3
            ),
            st.lists(
                st.fixed_dictionaries({"name": st.from_regex(r"\A[A-Z_]{1,8}\Z"), "value": st.just("v")}),
                max_size=2,
            ),
        ),
        st.one_of(st.integers(), st.floats(allow_nan=False), st.booleans()),
    ),
    "pod_template": Field(
        st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {"spec": st.fixed_dictionaries({"containers": st.lists(_CONTAINER, min_size=1, max_size=2)})},
                optional={"metadata": st.fixed_dictionaries({"labels": st.just({"app": "x"})})},
            ),
        ),
        st.one_of(
            st.just({}),
            st.just({"spec": {}}),
            st.just({"spec": {"containers": []}}),
            st.just({"spec": None}),
            st.fixed_dictionaries(
                {"spec": st.fixed_dictionaries({"containers": st.one_of(st.integers(), st.text(max_size=3))})}
            ),
            st.lists(st.integers(), max_size=2),
            st.integers(),
            st.text(min_size=1, max_size=5).filter(_no_template),
        ),
    ),
    "labels": Field(
        st.one_of(st.none(), st.dictionaries(_DNS_LABEL, _DNS_LABEL, max_size=3)),
        st.one_of(
            st.lists(st.integers(), min_size=1, max_size=2),
            st.integers(),
            st.text(string.ascii_letters, min_size=1, max_size=5),
        ),
    ),
    "service_account_name": Field(
        st.one_of(st.none(), _DNS_LABEL),
        st.one_of(
            st.sampled_from(["", "Bad", "sa_1", "-sa", "sa-", "a" * 254]),
            st.text(max_size=20).filter(lambda s: DNS_SUBDOMAIN_RE.fullmatch(s) is None and _no_template(s)),
        ),
    ),
}

# -- retry policies and routes ---------------------------------------------------------------------

_RULE_KEYS = [*ErrorCode.__members__, *(c.value for c in Classification)]
_BAD_KEY = st.text(string.ascii_letters + "_", min_size=1, max_size=20).filter(lambda k: k not in _RULE_KEYS)

POLICY: dict[str, Field] = {
    "max_attempts": Field(
        st.integers(1, 50),
        st.one_of(st.integers(max_value=0), st.text(string.ascii_letters, min_size=1, max_size=4), st.none()),
    ),
    "initial_delay": Field(
        st.one_of(st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=1)), _finite(0, 3600)),
        st.one_of(
            st.timedeltas(max_value=timedelta(seconds=-1)),
            _finite(-1e6, -0.001),
            st.text(string.ascii_letters, min_size=1, max_size=4),
        ),
    ),
    "backoff": Field(
        _finite(1.0, 10.0),
        st.one_of(
            _finite(-10, 0.999), st.just(math.nan), st.text(string.ascii_letters, min_size=1, max_size=4)
        ),
    ),
    "max_delay": Field(
        st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=1)),
        st.one_of(
            st.timedeltas(max_value=timedelta(seconds=-1)),
            st.text(string.ascii_letters, min_size=1, max_size=4),
        ),
    ),
    "jitter": Field(
        st.sampled_from(["full", "equal", "none"]),
        st.text(max_size=8).filter(lambda s: s not in ("full", "equal", "none")),
    ),
    "timeout_factor": Field(_finite(1.0, 10.0), st.one_of(_finite(-10, 0.999), st.just(math.nan))),
    "rules": Field(
        st.dictionaries(
            st.sampled_from(_RULE_KEYS),
            st.sampled_from(
                [{"action": "retry"}, {"action": "abort"}, {"action": "retry", "max_attempts": 2}]
            ),
            max_size=3,
        ),
        st.one_of(
            st.dictionaries(_BAD_KEY, st.just("abort"), min_size=1, max_size=2),
            st.dictionaries(
                st.sampled_from(_RULE_KEYS),
                st.just({"action": "retry", "max_attempts": 0}),
                min_size=1,
                max_size=1,
            ),
            st.dictionaries(
                st.sampled_from(_RULE_KEYS), st.just({"action": "explode"}), min_size=1, max_size=1
            ),
        ),
    ),
}

ROUTES = Field(
    st.dictionaries(
        st.sampled_from(_RULE_KEYS),
        st.sampled_from(["handle_a", "handle_b", ["handle_a", "handle_b"]]),
        min_size=1,
        max_size=4,
    ),
    st.one_of(
        st.dictionaries(_BAD_KEY, st.just("handle_a"), min_size=1, max_size=2),
        st.dictionaries(
            st.sampled_from(_RULE_KEYS), st.sampled_from(["", [], [""], 3, None]), min_size=1, max_size=2
        ),
        st.lists(st.text(max_size=3), max_size=2),
        st.integers(),
        st.text(min_size=1, max_size=5),
    ),
)


# -- canaries: an invalid value of every operator argument, carrying a unique string ----------------


def _long(canary: str, length: int) -> str:
    return (canary * (length // len(canary) + 2))[: length + 1]


#: per argument, invalid values with the canary inside: the refusal may name the argument, the
#: rule and the type, never the value (it may be a secret: an env var, a pod template, an
#: override, a connection field), so the canary must appear in no message, XCom, row or log
CANARIES: dict[str, Any] = {
    "tenant_id": lambda c: [c.upper(), f"{c}\n", _long(c, 63)],
    "operation": lambda c: [f"{c}\n{c}", f"{c}\x00", _long(c, 250)],
    "execution_id": lambda c: [f"{c}\x1b", _long(c, 1000)],
    "count": lambda c: [c, f"{c}1"],
    "wait_for": lambda c: [c],
    "timeout": lambda c: [c, f"P{c}"],
    "timeout_factor": lambda c: [c],
    "max_timeout": lambda c: [c],
    "on_partial_failure": lambda c: [c],
    "on_kill_action": lambda c: [c],
    "poll_interval": lambda c: [c],
    "pending_grace_period": lambda c: [c],
    "state_conn_id": lambda c: [f"{c}\n", _long(c, 250)],
    "deferrable": lambda c: [c],
    "get_logs": lambda c: [c],
    "container_logs": lambda c: [[c, ""], {c: 1}],
    "log_lines_on_failure": lambda c: [c],
    "log_fetch_interval": lambda c: [c],
    "cluster": lambda c: [_long(c, 2048), [c]],
    "task_definition": lambda c: [_long(c, 2048), {"family": c}],
    "launch_type": lambda c: [c],
    "capacity_provider_strategy": lambda c: [[{"weight": c}], [c]],
    "tags": lambda c: [[c], c],
    "overrides": lambda c: [f"containerOverrides={c}", [{"environment": [{"name": "TOKEN", "value": c}]}]],
    "network_configuration": lambda c: [c, [c]],
    "platform_version": lambda c: [_long(c, 64), [c]],
    "aws_conn_id": lambda c: [_long(c, 250), [c]],
    "region_name": lambda c: [_long(c, 64), [c]],
    "awslogs_group": lambda c: [_long(c, 512), [c]],
    "awslogs_stream_prefix": lambda c: [_long(c, 512), [c]],
    "namespace": lambda c: [c.upper(), f"{c}/x"],
    "image": lambda c: [_long(c, 4096), [c]],
    "cmds": lambda c: [c, [c, 1]],
    "arguments": lambda c: [c, [c, {"secret": c}]],
    "env_vars": lambda c: [f"PASSWORD={c}", {f"PASSWORD={c}"}],
    "container_resources": lambda c: [[c], c],
    "pod_template": lambda c: [
        {"metadata": {"annotations": {"token": c}}},
        {"spec": {"containers": []}, "metadata": {"labels": {"token": c}}},
        c,
    ],
    "labels": lambda c: [[c], c],
    "annotations": lambda c: [[f"token={c}"], c],
    "service_account_name": lambda c: [c.upper(), _long(c, 254)],
    "kubernetes_conn_id": lambda c: [_long(c, 250), [c]],
}
