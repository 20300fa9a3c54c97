"""The published JSON Schema of ``ComputeError`` (contract v1.1).

The checked-in file ``airflow_compute_provider/schemas/compute_error.v1.1.json`` is what
consumers outside Python validate against; a test fails when it drifts from the model.
Regenerate it with ``python -m airflow_compute_provider.errors.schema --write``.

``compute_error.v1.json`` stays as it was published, never regenerated: v1.1 only adds the
optional ``output`` (the failed unit's last container lines), left out of the JSON when unset,
so every v1.1 error without output validates against v1 too, and every v1 error against v1.1
(``tests/unit/test_errors.py``).
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from airflow_compute_provider.errors.model import SCHEMA_VERSION, ComputeError

#: the contract's minor version: 1 adds ``output``; ``schema_version`` in the JSON stays the major
SCHEMA_MINOR = 1
SCHEMA_FILE = f"compute_error.v{SCHEMA_VERSION}.{SCHEMA_MINOR}.json"
#: the v1 schema as first published (kept, not regenerated)
V1_SCHEMA_FILE = f"compute_error.v{SCHEMA_VERSION}.json"


def json_schema() -> dict[str, Any]:
    """The schema as the model defines it today."""
    schema = ComputeError.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"airflow-compute-provider/{SCHEMA_FILE}"
    return schema


def render() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def published_schema(file: str = SCHEMA_FILE) -> dict[str, Any]:
    """The schema file shipped in the package (the newest; ``V1_SCHEMA_FILE`` for v1's)."""
    text = resources.files("airflow_compute_provider.schemas").joinpath(file).read_text()
    result: dict[str, Any] = json.loads(text)
    return result


def main(argv: list[str]) -> int:
    target = Path(__file__).resolve().parent.parent / "schemas" / SCHEMA_FILE
    if argv[1:] == ["--write"]:
        target.write_text(render())
        return 0
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
