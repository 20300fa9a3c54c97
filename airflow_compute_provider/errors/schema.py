"""The published JSON Schema of ``ComputeError`` (contract v1).

The checked-in file ``airflow_compute_provider/schemas/compute_error.v1.json`` is what
consumers outside Python validate against; a test fails when it drifts from the model.
Regenerate it with ``python -m airflow_compute_provider.errors.schema --write``.
"""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from airflow_compute_provider.errors.model import SCHEMA_VERSION, ComputeError

SCHEMA_FILE = f"compute_error.v{SCHEMA_VERSION}.json"


def json_schema() -> dict[str, Any]:
    """The schema as the model defines it today."""
    schema = ComputeError.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"airflow-compute-provider/{SCHEMA_FILE}"
    return schema


def render() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def published_schema() -> dict[str, Any]:
    """The schema file shipped in the package."""
    text = resources.files("airflow_compute_provider.schemas").joinpath(SCHEMA_FILE).read_text()
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
