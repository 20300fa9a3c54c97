"""Property tests: no normalizer raises, whatever it is fed, and each returns a valid result.

Inputs range from arbitrary JSON-ish junk to payloads shaped like the real ones with junk in
every field (wrong types, huge ints, NaN, bytes, deep nesting), which is where a reader that
trusts a field's type would break.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kubernetes.client.exceptions import ApiException

from airflow_compute_provider.errors import ComputeError, ErrorCode
from airflow_compute_provider.normalize import ecs, from_exception, kubernetes, network

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=60),
    st.binary(max_size=30),
    st.sampled_from(["Failed", "Pending", "Running", "STOPPED", "OOMKilled", "RESOURCE:CPU", "Forbidden"]),
)
junk = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=20), inner, max_size=5),
    ),
    max_leaves=25,
)


def fields(*names: str) -> st.SearchStrategy[dict[str, Any]]:
    """Dicts with the real field names, each holding junk (or missing)."""
    return st.fixed_dictionaries({}, optional={name: junk for name in names})


container_status = fields("name", "state", "lastState", "exitCode", "reason", "essential", "restartCount")
pod_status = st.fixed_dictionaries(
    {},
    optional={
        "phase": st.one_of(st.sampled_from(["Failed", "Pending", "Running", "Unknown", "Succeeded"]), junk),
        "reason": junk,
        "message": junk,
        "conditions": st.lists(fields("type", "status", "reason", "message"), max_size=3) | junk,
        "containerStatuses": st.lists(container_status, max_size=3) | junk,
        "initContainerStatuses": st.lists(container_status, max_size=2) | junk,
    },
)
pods = st.one_of(
    junk,
    pod_status,
    st.fixed_dictionaries({"status": pod_status}, optional={"metadata": junk, "spec": junk}),
)
tasks = st.one_of(
    junk,
    st.fixed_dictionaries(
        {},
        optional={
            "lastStatus": junk,
            "stopCode": junk,
            "stoppedReason": junk,
            "taskArn": junk,
            "containers": st.lists(container_status, max_size=3) | junk,
        },
    ),
)


class _Internal(logging.Handler):
    """Collects the log lines a normalizer writes when its own reading code raised."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.failures: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if any(isinstance(arg, Exception) for arg in record.args or ()):
            self.failures.append(record.getMessage())


@contextmanager
def no_internal_failure() -> Iterator[None]:
    """The never-raise guard is the last resort: well-formed or junk input must not need it."""
    logger = logging.getLogger("airflow_compute_provider.normalize")
    handler, level = _Internal(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert handler.failures == []


def valid(result: Any) -> None:
    assert isinstance(result, ComputeError)
    assert result.classification is result.code.classification
    ComputeError.model_validate_json(result.model_dump_json())  # survives the trip through XCom


@SETTINGS
@given(pods)
def test_from_pod_never_raises(value: Any) -> None:
    with no_internal_failure():
        result = kubernetes.from_pod(value)
    if result is not None:
        valid(result)


@SETTINGS
@given(tasks)
def test_from_stopped_task_never_raises(value: Any) -> None:
    with no_internal_failure():
        result = ecs.from_stopped_task(value)
    if result is not None:
        valid(result)


@SETTINGS
@given(
    st.one_of(
        junk,
        st.fixed_dictionaries({"failures": st.lists(fields("arn", "reason", "detail"), max_size=3) | junk}),
    )
)
def test_from_run_task_response_never_raises(value: Any) -> None:
    with no_internal_failure():
        results = ecs.from_run_task_response(value)
    for result in results:
        valid(result)


@SETTINGS
@given(junk, junk, st.one_of(st.text(max_size=30), junk))
def test_from_client_error_never_raises(error: Any, metadata: Any, operation: Any) -> None:
    # ClientError's own constructor refuses some junk; the normalizer must not, so the
    # response is set the way any caller (or a subclass) could leave it.
    exc = ClientError.__new__(ClientError)
    exc.response = {"Error": error, "ResponseMetadata": metadata}
    exc.operation_name = operation
    with no_internal_failure():
        valid(ecs.from_client_error(exc))
        valid(ecs.from_client_error(error))


@SETTINGS
@given(junk, junk, st.one_of(st.text(max_size=200), st.binary(max_size=200), junk), junk)
def test_from_api_exception_never_raises(status: Any, reason: Any, body: Any, headers: Any) -> None:
    exc = ApiException(status=status, reason=reason)
    exc.body = body
    exc.headers = headers
    with no_internal_failure():
        valid(kubernetes.from_api_exception(exc))
        valid(kubernetes.from_api_exception(body))


class Nasty(Exception):
    """An exception whose str() raises and whose cause chain loops."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")


@SETTINGS
@given(st.one_of(junk, st.text(max_size=200)))
def test_from_exception_never_raises(message: Any) -> None:
    nasty = Nasty(message)
    nasty.__cause__ = OSError(-1, message if isinstance(message, str) else None)
    nasty.__cause__.__context__ = nasty  # a cycle
    for value in (message, Exception(message), nasty):
        with no_internal_failure():
            valid(from_exception(value))
            valid(network.from_exception(value))


def test_huge_payloads_are_capped_not_refused() -> None:
    message = "x" * 2_000_000
    result = ecs.from_stopped_task(
        {"lastStatus": "STOPPED", "stoppedReason": message, "containers": [{"exitCode": 1}]}
    )
    assert result is not None
    assert result.code is ErrorCode.CONTAINER_FAILED
    assert len(result.root_cause.provider_message or "") < 20_000


def test_scheduler_counts_beyond_any_cluster_do_not_break_the_reading() -> None:
    message = f"0/{'9' * 5000} nodes are available: {'9' * 5000} node(s) didn't match node selector."
    condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
    with no_internal_failure():  # int() refuses strings of over 4300 digits
        result = kubernetes.from_pod({"phase": "Pending", "conditions": [condition]})
    valid(result)
