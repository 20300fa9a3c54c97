"""Benchmark: the Compute Health page's requests at 1k and 100k rows, as a ratio.

    python bench/health.py [--sizes 1000,100000] [--repeat 5] [--url sqlite:///...|postgresql://...]
        [--json bench/results/health.json]

For each size N it builds a tenant state store (a SQLite file in a temporary directory unless
``--url`` names an empty database) holding N operations and N ledger rows over N/10 tenants and
50 DAGs, written with bulk inserts in the store's own schema (``ensure_schema`` first; the rows
are what the operators write: each tenant's newest try holds it, 2% of tenants need
investigation, 1% of ledger rows are pending cleanup, a tenth of the tries failed within the
last day). Then it times what one request of the page asks of the store, the best of
``--repeat`` runs each:

    health       ``health_summary``: counts, the first page of tenants with their last errors,
                 the first page of pending cleanup, the error chart (what ``GET /api/health``
                 reads), for a user who may read 10 of the 50 DAGs
    lookup       ``resource_lookup`` of one resource id (``GET /api/resources``)
    admin        ``health_summary`` for a user who reads everything

and prints the time at each size and the ratio largest / smallest. Bounded queries keep that
ratio far below the ratio of the sizes (100); loading every row would track it. The auth
manager's answer and HTTP are left out: they do not depend on the number of rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from airflow_compute_provider.errors import ComputeError, ErrorCode
from airflow_compute_provider.plugins.queries import Visibility
from airflow_compute_provider.plugins.summary import health_summary, resource_lookup
from airflow_compute_provider.state import SqlTenantStateStore
from airflow_compute_provider.state.schema import operations, resources, tenants

DAGS = 50
READABLE = frozenset(f"dag_{i}" for i in range(10))
BATCH = 5000


def seed(store: SqlTenantStateStore, url: str, rows: int, now: datetime) -> str:
    """N operations and N ledger rows over N/10 tenants; returns a resource id to look up."""
    store.list_tenants()  # creates the schema
    engine = sa.create_engine(url)
    error = ComputeError(code=ErrorCode.INVALID_CONFIGURATION, message="bad launch type").model_dump_json()
    n_tenants = max(1, rows // 10)
    tenant_rows, op_rows, ledger_rows = [], [], []
    for t in range(n_tenants):
        dag = f"dag_{t % DAGS}"
        stuck = t % 50 == 0
        for k in range(10):
            i = t * 10 + k
            if i >= rows:
                break
            failed = i % 10 == 0 or (stuck and k == 9)
            at = now - timedelta(minutes=(i * 7) % 1440 + 1)
            op_rows.append(
                {
                    "tenant_id": f"t{t}", "execution_id": f"{dag}:run{k}:work:-1", "attempt": 1,
                    "operation": "provision", "provider": "ecs",
                    "status": "failed" if failed else "succeeded",
                    "error_code": "INVALID_CONFIGURATION" if failed else None,
                    "error": error if failed else None, "started_at": at, "outcome_at": at, "finished_at": at,
                    "dag_id": dag, "run_id": f"run{k}", "task_id": "work", "map_index": -1,
                }
            )  # fmt: skip
            ledger_rows.append(
                {
                    "tenant_id": f"t{t}", "execution_id": f"{dag}:run{k}:work:-1", "provider": "ecs",
                    "conn_id": None, "locator": '{"cluster": "bench"}', "unit_index": 0, "generation": 0,
                    "idempotency_token": f"tok-{i}", "resource_id": f"arn:task/{i}",
                    "status": "pending_cleanup" if i % 100 == 0 else "succeeded", "attempts": 1,
                    "last_error": None, "version": 1, "created_at": at, "updated_at": at,
                }
            )  # fmt: skip
        last = min(9, rows - t * 10 - 1)
        tenant_rows.append(
            {
                "tenant_id": f"t{t}", "status": "needs_investigation" if stuck else "ready",
                "execution_id": f"{dag}:run{last}:work:-1", "attempt": 1, "held": False, "note": None,
                "version": 3, "created_at": now, "updated_at": now,
            }
        )  # fmt: skip
    with engine.begin() as conn:
        for table, values in ((tenants, tenant_rows), (operations, op_rows), (resources, ledger_rows)):
            for start in range(0, len(values), BATCH):
                conn.execute(table.insert(), values[start : start + BATCH])
    engine.dispose()
    return f"arn:task/{rows // 2}"


def best_of(repeat: int, work: Callable[[], Any]) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(rows: int, repeat: int, url: str | None) -> dict[str, Any]:
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="bench-health-") as tmp:
        where = url or f"sqlite:///{tmp}/state.db"
        store = SqlTenantStateStore(where)
        resource = seed(store, where, rows, now)
        limited = Visibility(READABLE)
        everything = Visibility(frozenset(f"dag_{i}" for i in range(DAGS)), unrecorded=True)
        window = timedelta(hours=24)
        summary = health_summary(store, now=now, window=window, visibility=limited)
        result = {
            "rows": rows,
            "tenants": max(1, rows // 10),
            "health_s": best_of(
                repeat, lambda: health_summary(store, now=now, window=window, visibility=limited)
            ),
            "lookup_s": best_of(repeat, lambda: resource_lookup(store, resource, limited)),
            "admin_s": best_of(
                repeat, lambda: health_summary(store, now=now, window=window, visibility=everything)
            ),
            "tenants_returned": len(summary["tenants"]),
            "tenants_total": summary["tenants_page"]["total"],
            "errors_counted": sum(s["total"] for s in summary["errors"]["series"]),
        }
        store.close()
        if url:  # leave a given database as it was found
            engine = sa.create_engine(url)
            with engine.begin() as conn:
                for table in (tenants, operations, resources):
                    conn.execute(table.delete())
            engine.dispose()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--url", default=None, help="an empty database to use instead of SQLite files")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    results = []
    for rows in sizes:
        print(f"seeding and measuring {rows} rows...", file=sys.stderr, flush=True)
        results.append(measure(rows, args.repeat, args.url))
    small, large = results[0], results[-1]
    ratios = {k: large[k] / small[k] for k in ("health_s", "lookup_s", "admin_s")}
    print(f"{'rows':>8} {'tenants':>8} {'health ms':>10} {'lookup ms':>10} {'admin ms':>10}")
    for r in results:
        print(
            f"{r['rows']:>8} {r['tenants']:>8} {r['health_s'] * 1000:>10.1f} {r['lookup_s'] * 1000:>10.2f} "
            f"{r['admin_s'] * 1000:>10.1f}"
        )
    print(
        f"ratio {large['rows']}/{small['rows']} rows: health {ratios['health_s']:.1f}x, "
        f"lookup {ratios['lookup_s']:.1f}x, admin {ratios['admin_s']:.1f}x "
        f"(rows {large['rows'] / small['rows']:.0f}x)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"results": results, "ratios": ratios}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
