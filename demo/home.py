"""An isolated AIRFLOW_HOME for the demo, set up before anything imports Airflow.

Airflow reads its configuration and opens its metadata database on first import, so
``prepare_home`` must run first: it empties the demo's home, points Airflow at it (SQLite
metadata DB, ``dags/`` of this repository as the DAG folder, no example DAGs), and puts a
migrated database in place. Migrating takes a while, so a migrated copy is kept per Airflow
version next to the home and copied in on later runs. The tenant state store needs no setup:
with no ``compute_state_default`` connection it is ``$AIRFLOW_HOME/compute_state.db``.

Everything lives under ``~/.cache/airflow-compute-provider/demo`` (``$XDG_CACHE_HOME`` honoured);
``--ui`` keeps using the same home, so its web UI shows the demo's runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DAGS_FOLDER = REPO_ROOT / "dags"
# Any valid Fernet key will do for a throwaway local database.
FERNET_KEY = "Wt1bo0ChL6Q2rwF3pJ9x6ZfZkxtVv0Wm4bqJzgk3mKU="


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "airflow-compute-provider" / "demo"


@dataclass(frozen=True)
class DemoHome:
    path: Path
    log_file: Path

    @property
    def database(self) -> Path:
        return self.path / "airflow.db"

    @property
    def state_database(self) -> Path:
        return self.path / "compute_state.db"


def airflow_environment(home: Path) -> dict[str, str]:
    """The variables that make Airflow use ``home``; the UI's processes get them too."""
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__FERNET_KEY": FERNET_KEY,
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        # The example DAGs' timings in seconds instead of minutes (see any DAG in dags/).
        "COMPUTE_EXAMPLES_FAST": "1",
    }


def prepare_home(root: Path | None = None) -> DemoHome:
    """Empty the demo's home, set the environment, and put a migrated metadata DB in it."""
    if "airflow" in sys.modules:
        raise RuntimeError("demo.home.prepare_home must run before anything imports airflow")
    root = root or cache_root()
    home = root / "home"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    os.environ.update(airflow_environment(home))
    demo_home = DemoHome(path=home, log_file=root / "demo.log")
    template = root / f"airflow-{version('apache-airflow-core')}.db"
    if not template.exists():
        _migrate(home)
        shutil.copyfile(demo_home.database, template)
    else:
        shutil.copyfile(template, demo_home.database)
    return demo_home


def _migrate(home: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        cwd=home,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
