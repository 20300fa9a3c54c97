"""The package as a platform team installs it: a wheel in a fresh virtual environment.

The environment reuses this one's installed dependencies (a ``.pth`` line naming this
environment's site-packages, which Python reads without processing the ``.pth`` files there, so
the editable checkout stays out), so the test costs seconds; the package itself comes only from
the freshly built wheel, installed with ``--no-deps``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("install")
    wheels = root / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(REPO),
        ],
        check=True,
    )
    wheel = next(wheels.glob("airflow_compute_provider-*.whl"))
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    own_site = next(env_dir.glob("lib/python*/site-packages"))
    (own_site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)],
        check=True,
    )
    return python


def _run(python: Path, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AIRFLOW_HOME": str(home), "PYTHONPATH": ""}
    return subprocess.run(
        [str(python), *args], capture_output=True, text=True, env=env, cwd=home, check=False
    )


def test_airflow_lists_the_installed_provider(installed: Path, tmp_path: Path) -> None:
    where = _run(installed, "-c", "import airflow_compute_provider as p; print(p.__file__)", home=tmp_path)
    assert where.returncode == 0, where.stderr
    assert "site-packages" in where.stdout, "imported from the installed wheel"
    assert str(REPO) not in where.stdout, "not from the checkout"
    listed = _run(installed, "-m", "airflow", "providers", "list", "--output", "json", home=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert '"airflow-compute-provider"' in listed.stdout


def test_the_wheel_ships_the_schema_and_type_marker(installed: Path, tmp_path: Path) -> None:
    code = (
        "from airflow_compute_provider.errors.schema import published_schema, json_schema;"
        "import importlib.resources as r;"
        "assert published_schema() == json_schema();"
        "assert r.files('airflow_compute_provider').joinpath('py.typed').is_file();"
        "print('ok')"
    )
    result = _run(installed, "-c", code, home=tmp_path)
    assert result.stdout.strip() == "ok", result.stderr


def test_importing_the_contract_loads_no_provider_sdk(installed: Path, tmp_path: Path) -> None:
    code = (
        "import sys, airflow_compute_provider.errors, airflow_compute_provider.normalize;"
        "sdks = ('boto3', 'botocore', 'kubernetes', 'kubernetes_asyncio');"
        "print(sorted(m for m in sdks if m in sys.modules))"
    )
    result = _run(installed, "-c", code, home=tmp_path)
    assert result.stdout.strip() == "[]", result.stderr
