"""Tolerant readers for untrusted provider payloads.

Every normalizer reads dicts, SDK objects and exceptions that may be malformed, truncated or
of a shape a newer API version invented. These helpers never raise: a value of the wrong type
reads as ``None`` (or an empty mapping / list), so the rule tables only ever see plain text,
ints and flags.

    text(value)            str | None   bytes decoded, anything else str()-ed, capped in length
    integer(value)         int | None   ints, integral floats, digit strings; never bools
    number(value)          float | None a finite, non-negative float (Retry-After and the like)
    mapping(value)         Mapping      the value when it is one, else an empty mapping
    items(value)           list         the value when it is a list or tuple, else []
    dig(value, *path)      Any          nested lookup through mappings
    header(headers, name)  str | None   case-insensitive lookup in any header container
    json_form(obj)         Any          an OpenAPI model (V1Pod, ...) as the API's camelCase JSON
    qualified_names(exc)   tuple        "module.Class" for every class in an exception's MRO
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

# Provider messages are kept verbatim, but a pathological payload (a whole HTML page, a
# megabyte of log) must not flow into XCom and the state store unbounded.
MAX_TEXT = 16_000

_EMPTY: Mapping[str, Any] = {}
_INT_RE = re.compile(r"\s*[+-]?\d{1,30}\s*")


def text(value: Any, limit: int = MAX_TEXT) -> str | None:
    """``value`` as text, or ``None`` when it is ``None`` or empty."""
    if value is None:
        return None
    if isinstance(value, str):
        result = value
    elif isinstance(value, bytes | bytearray):
        result = bytes(value).decode("utf-8", errors="replace")
    else:
        try:
            result = str(value)
        except Exception:
            result = f"<unprintable {type(value).__name__}>"
    if not result:
        return None
    return result if len(result) <= limit else result[:limit] + "...[truncated]"


def integer(value: Any) -> int | None:
    """``value`` as an int when it plainly is one (exit codes, HTTP statuses)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str | bytes) and len(value) <= 40:
        raw = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        if _INT_RE.fullmatch(raw):
            return int(raw)
    return None


def number(value: Any) -> float | None:
    """``value`` as a finite float >= 0, or ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str | bytes) and len(value) <= 40:
        try:
            result = float(value)
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) and result >= 0 else None


def mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else _EMPTY


def items(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def dig(value: Any, *path: str) -> Any:
    """``value[path[0]][path[1]]...``, or ``None`` as soon as a step is missing."""
    for key in path:
        if not isinstance(value, Mapping):
            return None
        try:
            value = value.get(key)
        except Exception:
            return None
    return value


def header(headers: Any, name: str) -> str | None:
    """A response header, whatever holds them (dict, urllib3 HTTPHeaderDict, multidict, pairs)."""
    if headers is None:
        return None
    wanted = name.lower()
    try:
        pairs = headers.items() if hasattr(headers, "items") else headers
        for key, value in pairs:
            if isinstance(key, str) and key.lower() == wanted:
                return text(value)
    except Exception:
        return None
    return None


def json_form(obj: Any, _depth: int = 0) -> Any:
    """An OpenAPI-generated model as the API's JSON (camelCase keys, ISO timestamps).

    Does what ``ApiClient.sanitize_for_serialization`` does, without building an
    ``ApiClient`` (which opens a connection pool, and for kubernetes_asyncio wants an event
    loop), so it works for the models of both ``kubernetes`` and ``kubernetes_asyncio``.
    """
    if _depth > 64:
        return None
    if obj is None or isinstance(obj, str | int | float | bool):
        return obj
    if isinstance(obj, datetime | date):
        return obj.isoformat()
    if isinstance(obj, list | tuple):
        return [json_form(item, _depth + 1) for item in obj]
    if isinstance(obj, Mapping):
        return {key: json_form(value, _depth + 1) for key, value in obj.items()}
    types = getattr(obj, "openapi_types", None)
    names = getattr(obj, "attribute_map", None)
    if isinstance(types, Mapping) and isinstance(names, Mapping):
        result = {}
        for attr in types:
            value = getattr(obj, attr, None)
            if value is not None:
                result[names.get(attr, attr)] = json_form(value, _depth + 1)
        return result
    return None


def qualified_names(exc: BaseException) -> tuple[str, ...]:
    """``module.Class`` for each class in ``type(exc).__mro__``, most specific first.

    Rules name exception classes this way so that nothing here imports botocore, urllib3,
    aiohttp or the Kubernetes clients just to run ``isinstance``.
    """
    return tuple(f"{cls.__module__}.{cls.__qualname__}" for cls in type(exc).__mro__)
