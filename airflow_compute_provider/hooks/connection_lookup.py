"""A provider connection read again while Airflow cannot fetch it for a moment.

Airflow 3 reports a connection lookup that failed for any reason (its API server or metadata
database away for a moment: a restart, a failover) as "isn't defined"
(``AirflowNotFoundException``, ``normalize.connection_not_fetched``). A try that took that at its
word when building its client would fail as a configuration error, never retried, its tenant
held for investigation, while the connection is there all along. So building a client reads
the connection again, with a backoff, for ``LOOKUP_PATIENCE`` seconds in all; then the last
error goes on as before: a connection that really is not defined still fails the try, that
much later. Waits and pollers have their own reading again (``normalize.worth_reading_again``).

    with_lookup_patience(build, conn_id)   ``build()``, read again while the connection is missing
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import tenacity

from airflow_compute_provider.normalize import connection_not_fetched

log = logging.getLogger(__name__)

T = TypeVar("T")

#: how long a client build reads a missing connection again before it believes it
LOOKUP_PATIENCE = 30.0


def with_lookup_patience(build: Callable[[], T], conn_id: str | None) -> T:
    def before_sleep(state: tenacity.RetryCallState) -> None:
        log.warning(
            "Connection %r could not be fetched (attempt %d); reading it again, for %.0f s in all, "
            "before taking it as not defined",
            conn_id,
            state.attempt_number,
            LOOKUP_PATIENCE,
        )

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(connection_not_fetched),
        wait=tenacity.wait_exponential(multiplier=0.5, max=5.0),
        stop=tenacity.stop_after_delay(LOOKUP_PATIENCE),
        before_sleep=before_sleep,
        reraise=True,
    )
    return retrying(build)


__all__ = ["LOOKUP_PATIENCE", "with_lookup_patience"]
