"""Argument checks run before the store touches its database, so bad input writes nothing.

Every failure is a ``ComputeConfigError`` naming the argument and the rule, never quoting the
value (it may be anything a DAG author templated, secrets included). Tenant ids follow the DNS label
rule (``^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$``) because they become provider labels and tags.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from airflow_compute_provider.errors import ComputeConfigError

TENANT_ID_PATTERN = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
TENANT_ID_MAX = 63
EXECUTION_ID_MAX = 1000
NAME_MAX = 250
NOTE_MAX = 4000
RESOURCE_ID_MAX = 2048
TOKEN_MAX = 255

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

E = TypeVar("E", bound=enum.Enum)


def tenant_id(value: Any, argument: str = "tenant_id") -> str:
    if not isinstance(value, str):
        raise ComputeConfigError(f"must be a string, got {type(value).__name__}", argument=argument)
    # fullmatch, not match with "$": "$" would accept a trailing newline.
    if TENANT_ID_PATTERN.fullmatch(value) is None:
        raise ComputeConfigError(
            f"is not a valid tenant id (a str of length {len(value)}): 1 to {TENANT_ID_MAX} characters "
            "of a-z, 0-9 and '-', starting and ending with a letter or digit (it becomes provider "
            "labels and tags)",
            argument=argument,
        )
    return value


def execution_id(value: Any, argument: str = "execution_id") -> str:
    return text(value, argument, EXECUTION_ID_MAX)


def text(value: Any, argument: str, max_length: int = NAME_MAX) -> str:
    """A non-empty single-line string without control characters."""
    if not isinstance(value, str):
        raise ComputeConfigError(f"must be a string, got {type(value).__name__}", argument=argument)
    if not value.strip():
        raise ComputeConfigError("must not be empty", argument=argument)
    if len(value) > max_length:
        raise ComputeConfigError(
            f"is {len(value)} characters long; at most {max_length} are allowed", argument=argument
        )
    if _CONTROL.search(value):
        raise ComputeConfigError("contains control characters", argument=argument)
    return value


def optional_text(value: Any, argument: str, max_length: int = NAME_MAX) -> str | None:
    return None if value is None else text(value, argument, max_length)


def note(value: Any, argument: str = "note") -> str:
    """Free text for humans: line breaks and tabs are fine, other control characters are not."""
    if not isinstance(value, str) or not value.strip():
        raise ComputeConfigError("must be a non-empty string", argument=argument)
    if len(value) > NOTE_MAX:
        raise ComputeConfigError(f"is longer than {NOTE_MAX} characters", argument=argument)
    if _CONTROL_BUT_LINES.search(value):
        raise ComputeConfigError("contains control characters", argument=argument)
    return value.strip()


def positive_int(value: Any, argument: str) -> int:
    return _int(value, argument, minimum=1)


def non_negative_int(value: Any, argument: str) -> int:
    return _int(value, argument, minimum=0)


def _int(value: Any, argument: str, *, minimum: int) -> int:
    # bool is an int to Python; True as an attempt number is a bug, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ComputeConfigError(f"must be an integer, got {type(value).__name__}", argument=argument)
    if value < minimum:
        raise ComputeConfigError(f"must be at least {minimum}, got {value}", argument=argument)
    return value


def boolean(value: Any, argument: str) -> bool:
    if not isinstance(value, bool):
        raise ComputeConfigError(f"must be True or False, got {value!r}", argument=argument)
    return value


def member(kind: type[E], value: Any, argument: str) -> E:
    """``value`` as a member of the str enum ``kind``; unknown values name the known ones."""
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(str(m.value) for m in kind)
        raise ComputeConfigError(
            f"unknown value {value!r}; expected one of: {known}", argument=argument
        ) from None


def optional_member(kind: type[E], value: Any, argument: str) -> E | None:
    return None if value is None else member(kind, value, argument)


def locator(value: Any, argument: str = "locator") -> dict[str, str]:
    """Where a resource lives, as flat string pairs (whatever the backend's ``locator()`` returns)."""
    if not isinstance(value, Mapping):
        raise ComputeConfigError(f"must be a mapping, got {type(value).__name__}", argument=argument)
    out: dict[str, str] = {}
    for key, item in value.items():
        out[text(key, f"{argument} key")] = text(item, f"{argument}[{key!r}]", RESOURCE_ID_MAX)
    return out
