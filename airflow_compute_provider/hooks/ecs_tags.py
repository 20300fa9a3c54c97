"""The tags that make an ECS task findable as one unit of one execution.

Every task we launch carries five tags in the ``compute.`` namespace next to the user's own:

    compute.tenant-id      the tenant id            (made tag-safe, see ``tag_value``)
    compute.execution-id   the full execution id    (made tag-safe, see ``tag_value``)
    compute.exec-key       the execution's key      (also the task's ``startedBy``)
    compute.unit-index     the unit's index         (decimal)
    compute.generation     the unit's generation    (decimal)

``find`` lists tasks by ``startedBy`` and keeps only those whose tags name this tenant,
execution and key, so a task that merely shares a ``startedBy`` is never taken for ours.

ECS tag values allow 256 characters from letters, numbers, separators and ``_.:/=+-@``.
Ids that do not fit are made fit deterministically (the same id always gives the same value,
so a tag written on one try matches on the next): other characters become ``_``, and a value
longer than 256 characters keeps its first 243 and ends in ``/`` + 12 hex digits of the
original's SHA-256. The exec key, derived from the full ids, keeps executions apart either way.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_compute_provider.errors import ComputeConfigError
from airflow_compute_provider.hooks.base import ExecutionRef, Unit, UnitLaunch

TAG_PREFIX = "compute."
TENANT_ID_TAG = "compute.tenant-id"
EXECUTION_ID_TAG = "compute.execution-id"
EXEC_KEY_TAG = "compute.exec-key"
UNIT_INDEX_TAG = "compute.unit-index"
GENERATION_TAG = "compute.generation"
OUR_TAG_KEYS = (TENANT_ID_TAG, EXECUTION_ID_TAG, EXEC_KEY_TAG, UNIT_INDEX_TAG, GENERATION_TAG)

#: ECS: at most 50 user tags on a resource, values of at most 256 characters.
MAX_TAGS = 50
MAX_TAG_VALUE = 256
_DIGEST_CHARS = 12
_EXTRA_CHARS = "_.:/=+-@"


def _allowed(ch: str) -> bool:
    # ECS's pattern is [\p{L}\p{Z}\p{N}_.:/=+\-@]: letters, separators, numbers, a few symbols.
    return ch in _EXTRA_CHARS or unicodedata.category(ch)[0] in "LZN"


def tag_value(value: str) -> str:
    """``value`` as a valid ECS tag value; unchanged when it already is one."""
    safe = "".join(ch if _allowed(ch) else "_" for ch in value)
    if len(safe) <= MAX_TAG_VALUE:
        return safe
    digest = hashlib.sha256(value.encode()).hexdigest()[:_DIGEST_CHARS]
    return f"{safe[: MAX_TAG_VALUE - _DIGEST_CHARS - 1]}/{digest}"


def unit_tags(execution: ExecutionRef, unit: UnitLaunch) -> list[dict[str, str]]:
    """Our tags for one unit's RunTask request."""
    return [
        {"key": TENANT_ID_TAG, "value": tag_value(execution.tenant_id)},
        {"key": EXECUTION_ID_TAG, "value": tag_value(execution.execution_id)},
        {"key": EXEC_KEY_TAG, "value": execution.key},
        {"key": UNIT_INDEX_TAG, "value": str(unit.index)},
        {"key": GENERATION_TAG, "value": str(unit.generation)},
    ]


def check_user_tags(tags: Any) -> list[dict[str, str]]:
    """The template's own ``tags``, refused before any request if they would break ours."""
    if tags is None:
        return []
    if not isinstance(tags, Sequence) or isinstance(tags, str):
        raise ComputeConfigError("must be a list of {'key': ..., 'value': ...} items", argument="tags")
    checked: list[dict[str, str]] = []
    for tag in tags:
        if not isinstance(tag, Mapping) or not isinstance(tag.get("key"), str):
            raise ComputeConfigError("every tag needs a string 'key'", argument="tags")
        if tag["key"].startswith(TAG_PREFIX):
            raise ComputeConfigError(
                f"tag key {tag['key']!r} is in the reserved {TAG_PREFIX!r} namespace", argument="tags"
            )
        checked.append(dict(tag))
    if len(checked) + len(OUR_TAG_KEYS) > MAX_TAGS:
        raise ComputeConfigError(
            f"at most {MAX_TAGS - len(OUR_TAG_KEYS)} tags: ECS allows {MAX_TAGS} and "
            f"{len(OUR_TAG_KEYS)} are needed to track the units",
            argument="tags",
        )
    return checked


def tags_of(task: Mapping[str, Any]) -> dict[str, str]:
    """A described task's tags as a dict (``include=["TAGS"]``)."""
    return {str(t.get("key")): str(t.get("value", "")) for t in task.get("tags") or ()}


def belongs_to(tags: Mapping[str, str], execution: ExecutionRef) -> bool:
    """Whether tags say the task is a unit of ``execution``: tenant, execution and key all match."""
    return (
        tags.get(EXEC_KEY_TAG) == execution.key
        and tags.get(TENANT_ID_TAG) == tag_value(execution.tenant_id)
        and tags.get(EXECUTION_ID_TAG) == tag_value(execution.execution_id)
    )


def unit_of(task: Mapping[str, Any], execution: ExecutionRef, locator: Mapping[str, str]) -> Unit | None:
    """The unit a described task is, or ``None`` when its tags do not make it one of ours."""
    tags = tags_of(task)
    if not belongs_to(tags, execution):
        return None
    try:
        index = int(tags[UNIT_INDEX_TAG])
        generation = int(tags[GENERATION_TAG])
    except (KeyError, ValueError):
        return None
    return Unit(index=index, generation=generation, resource_id=str(task["taskArn"]), locator=dict(locator))


def is_unit(
    task: Mapping[str, Any], execution: ExecutionRef, unit: UnitLaunch, locator: Mapping[str, str]
) -> Unit | None:
    """The task as ``unit`` of ``execution`` if its tags say it is exactly that unit and generation."""
    found = unit_of(task, execution, locator)
    if found is None or (found.index, found.generation) != (unit.index, unit.generation):
        return None
    return found


def sorted_units(units: Iterable[Unit]) -> list[Unit]:
    return sorted(units, key=lambda u: (u.index, u.generation, u.resource_id))
