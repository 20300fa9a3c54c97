"""Pure translation of provider failures into ``ComputeError``: no I/O, no Airflow, no SDK imports.

    from_exception(exc)         the dispatcher: any exception (or anything at all) -> ComputeError
     ├── ComputeOperationError  its own error, unchanged
     ├── botocore ClientError   -> ecs.from_client_error (also a WaiterError whose last
     │                             response was an API error)
     ├── Kubernetes ApiException (kubernetes or kubernetes_asyncio)
     │                          -> kubernetes.from_api_exception
     └── anything else          -> network.from_exception (transport, credentials, client config)

    ecs         from_client_error, from_run_task_response, from_stopped_task
    kubernetes  from_api_exception, from_pod
    network     from_exception

    worth_reading_again(error)  whether a status read that failed is repeated (pollers, waits)
    connection_not_fetched(exc) whether Airflow could not fetch a connection ("isn't defined")

Each provider module reads its input into ``rules.Facts`` and takes the first matching row of
an ordered table (``ecs_rules``, ``kubernetes_rules``, ``network_rules``); ``_result`` turns the
row's ``ErrorCode`` and the provider's own words into the ``ComputeError``. Every public
function catches everything and degrades to UNKNOWN_PROVIDER_ERROR, because a normalizer that
raises would replace the failure being explained with one of its own.

Exception classes are recognised by their ``module.Class`` names through the MRO, so importing
this package loads no boto3, botocore or Kubernetes client: DAG parsing stays cheap.
"""

from __future__ import annotations

import re
from typing import Any

from airflow_compute_provider.errors import Classification, ComputeError, ComputeOperationError
from airflow_compute_provider.normalize import ecs, kubernetes, network
from airflow_compute_provider.normalize._read import mapping, qualified_names
from airflow_compute_provider.normalize._result import unknown

__all__ = [
    "connection_not_fetched",
    "ecs",
    "from_exception",
    "kubernetes",
    "network",
    "worth_reading_again",
]

#: what Airflow raises when it could not fetch a connection, whatever stopped it
_CONNECTION_NOT_FETCHED = "AirflowNotFoundException"

_CLIENT_ERROR = re.compile(r"botocore\.exceptions\.ClientError")
_WAITER_ERROR = re.compile(r"botocore\.exceptions\.WaiterError")
_API_EXCEPTION = re.compile(r"kubernetes(?:_asyncio)?\.client\.exceptions\.ApiException")


def _waiter_with_error(exc: BaseException) -> bool:
    """A botocore WaiterError whose last response was an API error ("Waiter TasksStopped
    failed: An error occurred (ThrottlingException): Rate exceeded")."""
    if not any(_WAITER_ERROR.fullmatch(name) for name in qualified_names(exc)):
        return False
    return bool(mapping(mapping(getattr(exc, "last_response", None)).get("Error")).get("Code"))


def from_exception(exc: Any, provider: str | None = None) -> ComputeError:
    """The ``ComputeError`` for any exception a compute call raised; never raises itself.

    The first provider exception in the cause chain decides (an ``AirflowException`` raised
    from a ``ClientError`` is that ``ClientError``); ``provider`` ("ecs" / "kubernetes") is kept
    for network errors that do not name one.
    """
    try:
        for link in network.causes(exc):
            if isinstance(link, ComputeOperationError):
                return link.error
            names = qualified_names(link)
            if any(_CLIENT_ERROR.fullmatch(name) for name in names) or _waiter_with_error(link):
                return ecs.from_client_error(link)
            if any(_API_EXCEPTION.fullmatch(name) for name in names):
                return kubernetes.from_api_exception(link)
        return network.from_exception(exc, provider)
    except Exception as error:
        return unknown(provider, "exception", exc, error)


def connection_not_fetched(exc: BaseException) -> bool:
    """Airflow could not fetch a connection, whatever stopped it (it says "isn't defined"):
    ``AirflowNotFoundException`` anywhere in the exception's cause chain."""
    return any(type(link).__name__ == _CONNECTION_NOT_FETCHED for link in network.causes(exc))


def worth_reading_again(error: ComputeError) -> bool:
    """Whether a status read that failed with ``error`` is repeated (after a backoff, until the
    try's deadline) rather than ending the wait: a retriable error, or a connection Airflow could
    not fetch. The launch used that connection; Airflow 3 reports a lookup that failed for any
    reason (its API server or metadata database away for a moment) as "isn't defined"."""
    return (
        error.classification is Classification.RETRIABLE
        or error.root_cause.provider_code == _CONNECTION_NOT_FETCHED
    )
