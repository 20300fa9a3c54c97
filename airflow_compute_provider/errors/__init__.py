"""The error contract: one model for every compute failure, whichever provider it came from.

    catalog.py     ErrorCode, Classification (ordered by severity), CATALOG
    model.py       ComputeError and its parts (RootCause, UnitsReport, CleanupReport)
    exceptions.py  ComputeOperationError carries a ComputeError; ComputeConfigError for bad arguments
    schema.py      the published JSON Schema (schemas/compute_error.v1.json)

Nothing here does I/O or imports a provider SDK, so DAG files may import it freely.
"""

from airflow_compute_provider.errors.catalog import CATALOG, Classification, ErrorCode
from airflow_compute_provider.errors.exceptions import ComputeConfigError, ComputeOperationError
from airflow_compute_provider.errors.model import ComputeError

__all__ = [
    "CATALOG",
    "Classification",
    "ComputeConfigError",
    "ComputeError",
    "ComputeOperationError",
    "ErrorCode",
]
