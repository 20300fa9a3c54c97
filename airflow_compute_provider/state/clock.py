"""Whose clock the state store's timestamps come from: the database's, never a writer's.

Workers, triggerers and the reconciler run on different hosts whose clocks drift apart; a
heartbeat stamped by one and judged by another would make a live try look stale (or a dead one
live). So every write stamps the time the database reports, read once in the write's own
transaction, and the reconciler judges staleness by asking the database for "now" too.

    database_now(conn)   PostgreSQL: ``CURRENT_TIMESTAMP`` (the transaction's start, time-zone
                         aware); SQLite: ``strftime('%Y-%m-%d %H:%M:%f', 'now')``, UTC with
                         milliseconds (SQLite's ``CURRENT_TIMESTAMP`` drops them). SQLite is a
                         file on the writer's host, so there the database's clock is that host's;
                         a store shared between hosts is PostgreSQL.
    new_token()          a token naming the process that runs a try: ``hostname:pid:random``
    HEARTBEAT_INTERVAL_SECONDS   how often a waiting try renews its heartbeat
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def database_now(conn: Connection) -> datetime:
    """The database's current time, as an aware UTC datetime."""
    if conn.dialect.name == "sqlite":
        text = conn.execute(sa.text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar_one()
        return datetime.fromisoformat(str(text)).replace(tzinfo=UTC)
    value = conn.execute(sa.select(sa.func.current_timestamp())).scalar_one()
    if not isinstance(value, datetime):
        value = datetime.fromisoformat(str(value))
    # A database that answers without a zone (not PostgreSQL's timestamptz) is taken as UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def new_token() -> str:
    """A fresh token for one try in this process: ``hostname:pid:random`` (the random part tells
    two processes apart on a host that reuses pids)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


_process_tokens: dict[int, str] = {}


def process_token() -> str:
    """One token per process (made again after a fork): what a caller that names no token gets,
    so the same process beginning the same try twice is recognised as the same try."""
    pid = os.getpid()
    token = _process_tokens.get(pid)
    if token is None:
        token = _process_tokens[pid] = new_token()
    return token


#: How often a waiting try renews its heartbeat (a blocking wait; a deferred try instead records
#: that it is alive until its deadline). The reconciler's ``stale_after`` must be several of these.
HEARTBEAT_INTERVAL_SECONDS = 30.0
