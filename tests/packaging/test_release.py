"""The release artifacts: what ``python -m build`` makes, and the wheel beside the oldest and the
newest supported Airflow.

* ``python -m build`` makes an sdist and a wheel, and ``twine check --strict`` accepts both
  (metadata, and the README rendering as the PyPI page);
* the sdist is a working copy of the project (the example DAGs, the demo, the compose
  deployment, the tests, the changelog); the wheel holds the package only;
* for Airflow 3.1 (the oldest supported) and 3.3 (the newest), a fresh virtual environment gets
  ``apache-airflow`` of that series and the wheel, with the dependencies the wheel declares and
  nothing from this environment: ``airflow providers list`` shows the provider, and the example
  DAGs of ``dags/`` import into a DagBag with no error, the package coming from the wheel.

The installs use ``uv`` (declared in the test extra): the same packages pip would install, in
seconds once its cache is warm instead of minutes. Wheels only, so nothing is compiled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from airflow_compute_provider import __version__

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_SERIES = {"oldest": "3.1", "newest": "3.3"}

# Run inside the fresh environment: where the package comes from, and the example DAGs in a DagBag.
PROBE = """
import json, sys
import airflow, airflow_compute_provider
from airflow_compute_provider.policy import AIRFLOW_EVALUATES_POLICIES
try:
    from airflow.dag_processing.dagbag import DagBag   # Airflow 3.2+
except ImportError:
    from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])  # AIRFLOW__CORE__LOAD_EXAMPLES=False
print(json.dumps({
    "airflow": airflow.__version__,
    "package_file": airflow_compute_provider.__file__,
    "airflow_evaluates_policies": AIRFLOW_EVALUATES_POLICIES,
    "import_errors": {k: v[-2000:] for k, v in bag.import_errors.items()},
    "dag_ids": sorted(bag.dag_ids),
}))
"""


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--no-isolation",
            "--sdist",
            "--wheel",
            "--outdir",
            str(out),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    return out


def _one(dist: Path, pattern: str) -> Path:
    found = sorted(dist.glob(pattern))
    assert len(found) == 1, f"{pattern}: {found}"
    return found[0]


def test_build_makes_an_sdist_and_a_wheel_that_twine_accepts(dist: Path) -> None:
    sdist = _one(dist, f"airflow_compute_provider-{__version__}.tar.gz")
    wheel = _one(dist, f"airflow_compute_provider-{__version__}-py3-none-any.whl")
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("PASSED") == 2


def test_the_sdist_is_the_project_and_the_wheel_the_package(dist: Path) -> None:
    with tarfile.open(_one(dist, "*.tar.gz")) as sdist:
        root = f"airflow_compute_provider-{__version__}/"
        names = {n.removeprefix(root) for n in sdist.getnames()}
    for path in (
        "README.md",
        "CHANGELOG.md",
        "Makefile",
        "pyproject.toml",
        "docker-compose.yml",
        "deploy/Dockerfile",
        "dags/tenant_provisioning_ecs.py",
        "demo/__main__.py",
        "tests/conftest.py",
        "airflow_compute_provider/schemas/compute_error.v1.json",
        "airflow_compute_provider/schemas/compute_error.v1.1.json",
    ):
        assert path in names, f"the sdist lacks {path}"

    with zipfile.ZipFile(_one(dist, "*.whl")) as wheel:
        tops = {n.split("/")[0] for n in wheel.namelist()}
        entry_points = wheel.read(
            f"airflow_compute_provider-{__version__}.dist-info/entry_points.txt"
        ).decode()
    assert tops == {"airflow_compute_provider", f"airflow_compute_provider-{__version__}.dist-info"}
    assert "[apache_airflow_provider]" in entry_points


def _fresh_environment(root: Path, airflow_series: str, wheel: Path) -> Path:
    venv = root / "venv"
    subprocess.run(
        [sys.executable, "-m", "uv", "venv", "--quiet", "--python", sys.executable, str(venv)],
        check=True,
        capture_output=True,
    )
    python = venv / "bin" / "python"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "uv",
            "pip",
            "install",
            "--quiet",
            "--python",
            str(python),
            "--only-binary",
            ":all:",
            f"apache-airflow=={airflow_series}.*",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    return python


def _run(python: Path, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "PYTHONPATH"}
    env["AIRFLOW_HOME"] = str(home)
    env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    # outside the checkout: `python -c` would put the working directory on sys.path
    return subprocess.run(
        [str(python), *args], capture_output=True, text=True, env=env, cwd=home, check=False, timeout=600
    )


@pytest.mark.parametrize("airflow_series", list(AIRFLOW_SERIES.values()), ids=list(AIRFLOW_SERIES))
def test_the_wheel_installs_beside_airflow_and_the_example_dags_import(
    dist: Path, airflow_series: str, tmp_path: Path
) -> None:
    python = _fresh_environment(tmp_path, airflow_series, _one(dist, "*.whl"))
    home = tmp_path / "home"
    home.mkdir()

    listed = _run(python, "-m", "airflow", "providers", "list", "--output", "json", home=home)
    assert listed.returncode == 0, listed.stderr[-4000:]
    providers = {p["package_name"]: p["version"] for p in json.loads(listed.stdout)}
    assert providers.get("airflow-compute-provider") == __version__
    assert "apache-airflow-providers-amazon" in providers
    assert "apache-airflow-providers-cncf-kubernetes" in providers

    probe = _run(python, "-c", PROBE, str(REPO / "dags"), home=home)
    assert probe.returncode == 0, probe.stderr[-4000:]
    seen = json.loads(probe.stdout.strip().splitlines()[-1])
    assert seen["airflow"].startswith(f"{airflow_series}.")
    assert str(python.parent.parent) in seen["package_file"], "the package comes from the wheel"
    assert seen["import_errors"] == {}
    assert {"tenant_provisioning_ecs", "compute_error_routing", "long_running_reattach"} <= set(
        seen["dag_ids"]
    )
    # Airflow evaluates retry policies from 3.3 on; before that the operator does (policy/legacy.py)
    assert seen["airflow_evaluates_policies"] is (airflow_series >= "3.3")
