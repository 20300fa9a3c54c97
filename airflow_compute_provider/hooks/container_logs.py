"""What a container-log reader returns, for either provider, and how a raw line is made safe.

    LogLine         one line a container printed: when (the provider's timestamp), which
                    container, and its text, already cleaned (``clean_line``)
    LogRead         the lines of one read, and the warnings of what could not be read
    LogCursor       where a unit's reading stands: the newest timestamp printed, and how many
                    lines carried exactly that timestamp (so a repeat at the same instant is
                    printed once, never twice, never dropped)
    ContainerLogReader  the protocol ``ecs_logs.EcsLogReader`` and
                    ``kubernetes_logs.KubernetesLogReader`` implement
    clean_line(...) a line as the task log may show it: decoded (undecodable bytes replaced),
                    control characters escaped, cut at ``MAX_LINE_CHARS`` and marked when cut

A reader never raises for what concerns the logs alone (no log configuration, a missing stream,
a refused or faulted logs API, a pod already gone): it returns warnings, and the operator puts
them in the task log. Container output is information, never a reason for the task to fail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from airflow_compute_provider.hooks.base import Unit

#: one line's bound in the task log and in an error (longer lines are cut and marked)
MAX_LINE_CHARS = 2000
#: what a cut line ends with
CUT_MARK = " [... line cut at {limit} characters]"
#: what stands for a line that was mostly not text
BINARY_MARK = "[binary output: {count} bytes not shown]"


@dataclass(frozen=True)
class LogLine:
    at: datetime | None
    container: str
    text: str


@dataclass(frozen=True)
class LogCursor:
    """Lines at or before ``at`` were printed; ``same`` of them carried ``at`` itself."""

    at: datetime | None = None
    same: int = 0

    def admits(self, at: datetime | None, seen_at_instant: int) -> bool:
        """Whether a line stamped ``at`` (the ``seen_at_instant``-th line read at that instant,
        from 0) is new. A line without a timestamp is always new."""
        if self.at is None or at is None:
            return True
        if at > self.at:
            return True
        return at == self.at and seen_at_instant >= self.same

    def after(self, at: datetime | None) -> LogCursor:
        """The cursor once a line stamped ``at`` was printed."""
        if at is None:
            return self
        if self.at is not None and at == self.at:
            return LogCursor(at, self.same + 1)
        if self.at is not None and at < self.at:
            return self
        return LogCursor(at, 1)


@dataclass
class LogRead:
    lines: list[LogLine] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class ContainerLogReader(Protocol):
    """Reads a unit's container output; ``containers``: ``None`` the main one, ``True`` every
    one, else these names."""

    def read(self, unit: Unit, containers: Sequence[str] | bool | None, since: datetime | None) -> LogRead:
        """Lines stamped at or after ``since`` (all when ``None``), oldest first, per container."""
        ...

    def tail(self, unit: Unit, lines: int) -> tuple[str | None, LogRead]:
        """The main container's name and its last ``lines`` lines."""
        ...

    def events(self, unit: Unit, count: int) -> list[str]:
        """The unit's last provider events (a pod's), oldest first; ``[]`` where there are none."""
        ...


def clean_line(raw: str | bytes, limit: int = MAX_LINE_CHARS) -> str:
    """``raw`` as one printable line of at most ``limit`` characters (plus the cut mark)."""
    text = (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw).rstrip("\r\n")
    if text:
        odd = sum(1 for c in text if c == "\ufffd" or (ord(c) < 32 and c != "\t"))
        if odd * 4 > len(text):  # mostly not text: say so rather than print noise
            return BINARY_MARK.format(count=len(raw))
    cleaned = "".join(c if c == "\t" or ord(c) >= 32 else f"\\x{ord(c):02x}" for c in text)
    if len(cleaned) > limit:
        return cleaned[:limit] + CUT_MARK.format(limit=limit)
    return cleaned


__all__ = [
    "BINARY_MARK",
    "CUT_MARK",
    "MAX_LINE_CHARS",
    "ContainerLogReader",
    "LogCursor",
    "LogLine",
    "LogRead",
    "clean_line",
]
