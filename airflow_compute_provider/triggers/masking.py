"""Redaction in the triggerer's own process, where the worker's registered secrets are unknown.

A worker registers every secret of a launch request with Airflow's masker
(``observability.register_secrets``), but a trigger runs in another process, often on another
machine: nothing registered there. So the secrets travel with the trigger: the operator puts the
request's secret values into the trigger's arguments (``ComputeStatusTrigger(secrets=...)``;
Airflow stores trigger arguments Fernet-encrypted), and the trigger hands them to this module
when it starts, in whichever triggerer runs it (after a kill, the other one):

    remember(values)      add secret values to this process's set (and to Airflow's masker,
                          where one is configured), for every trigger of the process
    mask_text(text)       ``text`` with every remembered value replaced by ``***``
    mask_payload(value)   a JSON-like value with every remembered value masked in every string:
                          what a trigger event carries (unit statuses with their errors)
    mask_error(error)     a ``ComputeError`` with secret-looking keys redacted as well
                          (``observability.redact_payload``)

Shared pollers (``pollers.py``, ``kube_watch.py``) log provider errors on behalf of several
triggers: they call ``mask_text`` on every message they log, so they mask with the secrets of
every trigger this process holds.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from airflow_compute_provider.errors import ComputeError
from airflow_compute_provider.observability import REDACTED, redact_payload

#: a value this short is not masked by value (it would mask ordinary words); by key it still is
MIN_SECRET_LENGTH = 4


class _Secrets:
    """This process's remembered values, longest first (a secret containing another is masked
    whole); replaced as a whole under a lock, read without one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ordered: tuple[str, ...] = ()


_SECRETS = _Secrets()


def remember(values: Iterable[str]) -> None:
    fresh = {str(v) for v in values if v and len(str(v)) >= MIN_SECRET_LENGTH} - set(_SECRETS.ordered)
    if not fresh:
        return
    with _SECRETS.lock:
        _SECRETS.ordered = tuple(sorted(fresh | set(_SECRETS.ordered), key=len, reverse=True))
    try:  # Airflow's own masker too, for what Airflow itself logs in this process
        from airflow.sdk.log import mask_secret
    except ImportError:  # pragma: no cover - Airflow is a dependency
        return
    for value in fresh:
        with contextlib.suppress(Exception):  # a masker that cannot register still leaves ours
            mask_secret(value)


def forget_all() -> None:
    """Tests only: an empty set, as in a fresh process."""
    with _SECRETS.lock:
        _SECRETS.ordered = ()


def mask_text(text: str) -> str:
    for secret in _SECRETS.ordered:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def mask_payload(value: Any) -> Any:
    # by value only: an event's ``resume`` holds the try's own token, which is no secret
    return _mask_strings(value)


def mask_error(error: ComputeError) -> ComputeError:
    data = error.to_json_dict()
    masked = _mask_strings(redact_payload(data))
    return error if masked == data else ComputeError.model_validate(masked)


def _mask_strings(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: _mask_strings(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_strings(v) for v in value]
    return value
