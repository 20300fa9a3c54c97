"""The command line for the platform's operators: look at tenants and resources, release tenants.

    python -m airflow_compute_provider.state tenants [--status S]
    python -m airflow_compute_provider.state resources [--tenant T] [--status pending_cleanup]
    python -m airflow_compute_provider.state operations [--tenant T] [--awaiting-eventual-outcome]
    python -m airflow_compute_provider.state release TENANT --note TEXT [--force]

Every command prints a table, or JSON with ``--json``. The database is the one Airflow's
configuration points at (``--conn-id``, see config.py), or ``--url`` given explicitly.
Exit status: 0 done, 1 the store refused (the message says why), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TextIO

from airflow_compute_provider.errors import ComputeOperationError, ErrorCode
from airflow_compute_provider.state.config import DEFAULT_CONN_ID, open_state_store
from airflow_compute_provider.state.models import LedgerEntry, Operation, Tenant, to_json_dict
from airflow_compute_provider.state.sql import SqlTenantStateStore
from airflow_compute_provider.state.status import (
    IllegalTransitionError,
    OperationStatus,
    ResourceStatus,
    TenantNotFoundError,
    TenantStatus,
)
from airflow_compute_provider.state.store import TenantStateStore

#: table cells longer than this are shortened (``--json`` always has everything)
CELL_MAX = 60


def build_parser() -> argparse.ArgumentParser:
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument(
        "--conn-id",
        default=DEFAULT_CONN_ID,
        help=f"Airflow connection of the state database (default: {DEFAULT_CONN_ID})",
    )
    where.add_argument("--url", help="a SQLAlchemy URL to use instead of the Airflow connection")
    where.add_argument("--json", action="store_true", help="print JSON instead of a table")

    parser = argparse.ArgumentParser(
        prog="python -m airflow_compute_provider.state",
        description="Inspect the compute tenant state store and release tenants held for investigation.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    tenants = commands.add_parser("tenants", parents=[where], help="list tenants")
    tenants.add_argument("--status", choices=[s.value for s in TenantStatus])

    resources = commands.add_parser("resources", parents=[where], help="list ledger rows")
    resources.add_argument("--tenant")
    resources.add_argument("--execution")
    resources.add_argument("--status", choices=[s.value for s in ResourceStatus])

    operations = commands.add_parser("operations", parents=[where], help="list operations, newest first")
    operations.add_argument("--tenant")
    operations.add_argument("--status", choices=[s.value for s in OperationStatus])
    operations.add_argument("--error-code", choices=[c.value for c in ErrorCode])
    operations.add_argument(
        "--awaiting-eventual-outcome",
        action="store_true",
        help="only tries whose work may have outlived them and whose end is not yet known",
    )

    release = commands.add_parser("release", parents=[where], help="release a tenant back to ready")
    release.add_argument("tenant")
    release.add_argument("--note", required=True, help="why the tenant may take operations again")
    release.add_argument(
        "--force",
        action="store_true",
        help="also free a tenant held by an execution that will never come back",
    )
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        store = _open(args)
        try:
            _COMMANDS[args.command](store, args, out)
        finally:
            store.close()
    except (ComputeOperationError, IllegalTransitionError, TenantNotFoundError) as exc:
        err.write(f"error: {exc}\n")
        return 1
    return 0


def _open(args: argparse.Namespace) -> TenantStateStore:
    return SqlTenantStateStore(args.url) if args.url else open_state_store(args.conn_id)


def _tenants(store: TenantStateStore, args: argparse.Namespace, out: TextIO) -> None:
    found = store.list_tenants(status=args.status)
    _emit(out, args.json, found, _TENANT_COLUMNS, "no tenants")


def _resources(store: TenantStateStore, args: argparse.Namespace, out: TextIO) -> None:
    found = store.list_resources(tenant_id=args.tenant, execution_id=args.execution, status=args.status)
    _emit(out, args.json, found, _RESOURCE_COLUMNS, "no resources")


def _operations(store: TenantStateStore, args: argparse.Namespace, out: TextIO) -> None:
    found = store.list_operations(
        tenant_id=args.tenant,
        status=args.status,
        error_code=args.error_code,
        awaiting_eventual_outcome=args.awaiting_eventual_outcome,
    )
    _emit(out, args.json, found, _OPERATION_COLUMNS, "no operations")


def _release(store: TenantStateStore, args: argparse.Namespace, out: TextIO) -> None:
    tenant = store.release(args.tenant, args.note, force=args.force)
    move = store.transitions(tenant.tenant_id)[0]
    if args.json:
        json.dump({"tenant": to_json_dict(tenant), "transition": to_json_dict(move)}, out, indent=2)
        out.write("\n")
        return
    out.write(
        f"released tenant {tenant.tenant_id}: {move.from_status.value} -> {move.to_status.value}"
        f" (note: {move.note})\n"
    )


_COMMANDS: dict[str, Callable[[TenantStateStore, argparse.Namespace, TextIO], None]] = {
    "tenants": _tenants,
    "resources": _resources,
    "operations": _operations,
    "release": _release,
}

Column = tuple[str, Callable[[Any], Any]]

_TENANT_COLUMNS: list[Column] = [
    ("TENANT", lambda t: t.tenant_id),
    ("STATUS", lambda t: t.status.value),
    ("EXECUTION", lambda t: t.execution_id),
    ("ATTEMPT", lambda t: t.attempt),
    ("HELD", lambda t: "yes" if t.held else "no"),
    ("UPDATED", lambda t: t.updated_at),
    ("NOTE", lambda t: t.note),
]

_RESOURCE_COLUMNS: list[Column] = [
    ("TENANT", lambda r: r.tenant_id),
    ("EXECUTION", lambda r: r.execution_id),
    ("UNIT", lambda r: r.unit_index),
    ("GEN", lambda r: r.generation),
    ("STATUS", lambda r: r.status.value),
    ("PROVIDER", lambda r: r.provider),
    ("LOCATOR", lambda r: ",".join(f"{k}={v}" for k, v in sorted(r.locator.items()))),
    ("RESOURCE", lambda r: r.resource_id),
    ("ATTEMPTS", lambda r: r.attempts),
    ("LAST ERROR", lambda r: r.last_error.code.value if r.last_error else None),
    ("UPDATED", lambda r: r.updated_at),
]

_OPERATION_COLUMNS: list[Column] = [
    ("ID", lambda o: o.id),
    ("TENANT", lambda o: o.tenant_id),
    ("EXECUTION", lambda o: o.execution_id),
    ("ATTEMPT", lambda o: o.attempt),
    ("OPERATION", lambda o: o.operation),
    ("PROVIDER", lambda o: o.provider),
    ("STATUS", lambda o: o.status.value),
    ("ERROR", lambda o: o.error_code.value if o.error_code else None),
    ("TENANT AFTER", lambda o: o.tenant_status_after.value if o.tenant_status_after else None),
    ("STARTED", lambda o: o.started_at),
    ("EVENTUAL", lambda o: o.eventual_status.value if o.eventual_status else None),
]


def _emit(
    out: TextIO,
    as_json: bool,
    records: Sequence[Tenant | LedgerEntry | Operation],
    columns: list[Column],
    empty: str,
) -> None:
    if as_json:
        json.dump([to_json_dict(r) for r in records], out, indent=2)
        out.write("\n")
        return
    if not records:
        out.write(f"({empty})\n")
        return
    out.write(render_table([name for name, _ in columns], [[get(r) for _, get in columns] for r in records]))


def render_table(headers: list[str], rows: list[list[Any]]) -> str:
    """Left-aligned columns separated by two spaces; empty cells as ``-``."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%SZ")
    else:
        # One line per row, whatever the value holds (notes may span lines).
        text = " ".join(str(value).split())
    return text if len(text) <= CELL_MAX else text[: CELL_MAX - 3] + "..."
