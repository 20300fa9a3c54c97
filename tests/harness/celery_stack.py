"""The distributed Airflow stack as processes on this machine: docker-compose.yml without Docker.

    CeleryStack         one stack in one directory (its "home"): PostgreSQL (the Airflow metadata
                        database and the tenant state store's ``compute_state``, as
                        ``deploy/postgres-init.sql`` makes them), Redis (Debian's ``redis-server``)
                        as the Celery broker, and Airflow with ``CeleryExecutor``: api-server,
                        scheduler, dag-processor, ``WORKERS`` Celery workers and ``TRIGGERERS``
                        triggerers, each its own process group with its own log under
                        ``<home>/logs``; with ``clouds=True`` also a moto server (as ECS,
                        bootstrapped by ``deploy/bootstrap_moto.py``) and the local Kubernetes
                        cluster (``scripts/test-cluster``), as compose's moto and k3s
    compose_services()  what docker-compose.yml runs, read from the file
    airflow_environment(...)
                        compose's ``x-airflow-common`` environment with its container host names
                        and paths moved to this machine's loopback ports and folders

``up`` also starts a supervisor process that restarts any Airflow component that exits, as
compose's ``restart: unless-stopped`` does (Airflow's components exit when PostgreSQL restarts).
Every service's pid is in ``<home>/pids/<name>.pid`` (pid and kernel start time), so
``scripts/stack down`` and ``status`` work from another process than ``up``; the tests use the
same class in a temp home. The Airflow settings are compose's own (read from the file, not
copied), plus what running every component on one host needs (distinct ports per worker and
triggerer log server); a test compares the two (tests/distributed/test_compose_parity.py).

    python -m tests.harness.celery_stack up|down|status [--home DIR] [--port 8080]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.harness.ports import LOOPBACK, free_port, port_accepts, wait_until
from tests.harness.postgres import find_postgres_bindir

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
DEFAULT_HOME = REPO_ROOT / ".stack"
WORKERS = 2
TRIGGERERS = 2
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin"  # deploy/simple_auth_manager_passwords.json, as compose
START_TIMEOUT = 240.0
#: compose service -> the Airflow command it runs (``airflow <args>``)
AIRFLOW_SERVICES: dict[str, tuple[str, ...]] = {
    "airflow-apiserver": ("api-server",),
    "airflow-scheduler": ("scheduler",),
    "airflow-dag-processor": ("dag-processor",),
    "airflow-triggerer": ("triggerer",),
    "airflow-worker": ("celery", "worker"),
}
#: compose services this stack runs another way (or, for one-shots, as a step of ``up``)
OTHER_SERVICES = {
    "postgres": "postgres process (Debian's postgresql), deploy/postgres-init.sql applied at init",
    "redis": "redis-server process (Debian's redis-server)",
    "airflow-init": "airflow db migrate, a step of up",
    "moto": "moto server process (clouds only)",
    "moto-bootstrap": "deploy/bootstrap_moto.py, a step of up (clouds only)",
    "k3s": "scripts/test-cluster (clouds only)",
    "k3s-setup": "the tenants namespace, a step of up (clouds only)",
}


def compose_services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    return services


def compose_airflow_environment() -> dict[str, str]:
    """The ``x-airflow-common`` environment every Airflow service of compose shares."""
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    return {k: str(v) for k, v in document["x-airflow-common"]["environment"].items()}


@dataclass
class Ports:
    api: int
    postgres: int
    redis: int
    moto: int
    scheduler_health: int
    worker_logs: list[int] = field(default_factory=list)
    trigger_logs: list[int] = field(default_factory=list)

    @classmethod
    def pick(cls, api: int | None) -> Ports:
        return cls(
            api=api or free_port(),
            postgres=free_port(),
            redis=free_port(),
            moto=free_port(),
            scheduler_health=free_port(),
            worker_logs=[free_port() for _ in range(WORKERS)],
            trigger_logs=[free_port() for _ in range(TRIGGERERS)],
        )


def airflow_environment(
    ports: Ports, dags_folder: Path, kubeconfig: Path | None, home: Path
) -> dict[str, str]:
    """Compose's Airflow environment, its hosts and paths moved to this machine."""
    moves = {
        "postgres:5432": f"{LOOPBACK}:{ports.postgres}",
        "redis://redis:6379": f"redis://{LOOPBACK}:{ports.redis}",
        "http://airflow-apiserver:8080": f"http://{LOOPBACK}:{ports.api}",
        "http://moto:5000": f"http://{LOOPBACK}:{ports.moto}",
        '"host": "postgres", "port": 5432': f'"host": "{LOOPBACK}", "port": {ports.postgres}',
        "/opt/airflow/dags": str(dags_folder),
        "/opt/airflow/deploy": str(REPO_ROOT / "deploy"),
        "/kube/kubeconfig.yaml": str(kubeconfig or home / "kubeconfig.yaml"),
    }
    env: dict[str, str] = {}
    for key, value in compose_airflow_environment().items():
        moved = value
        for old, new in moves.items():
            moved = moved.replace(old, new)
        env[key] = moved
    return env


def component_hostname(name: str) -> str:
    """The loopback address a worker or triggerer is known by: worker-N 127.0.1.N, triggerer-N
    127.0.2.N (``[core] hostname_callable``, tests/harness/stack_hostname.py)."""
    kind, index = name.rsplit("-", 1)
    return f"127.0.{1 if kind == 'worker' else 2}.{index}"


def _start_ticks(pid: int) -> str | None:
    """The kernel start time of ``pid`` (a later process reusing the pid has another)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]


class CeleryStack:
    """Start, inspect and stop the distributed stack in ``home``."""

    def __init__(
        self,
        home: Path = DEFAULT_HOME,
        *,
        api_port: int | None = None,
        dags_folder: Path | None = None,
        clouds: bool = False,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.home = home.resolve()
        self.logs = self.home / "logs"
        self.pids = self.home / "pids"
        self.dags_folder = (dags_folder or REPO_ROOT / "dags").resolve()
        self.clouds = clouds
        self._api_port = api_port
        self._extra_env = dict(extra_env or {})
        self.ports: Ports | None = None
        self.kubeconfig: Path | None = None

    # -- settings ---------------------------------------------------------------------------

    @property
    def _settings_file(self) -> Path:
        return self.home / "stack.json"

    def _load(self) -> None:
        if self.ports is None and self._settings_file.exists():
            saved = json.loads(self._settings_file.read_text())
            self.ports = Ports(**saved["ports"])
            self.dags_folder = Path(saved["dags_folder"])
            self.kubeconfig = Path(saved["kubeconfig"]) if saved.get("kubeconfig") else None
            self.clouds = bool(saved.get("clouds"))
            self._extra_env = saved.get("extra_env", {})

    @property
    def base_url(self) -> str:
        assert self.ports is not None
        return f"http://{LOOPBACK}:{self.ports.api}"

    @property
    def metadata_url(self) -> str:
        assert self.ports is not None
        return f"postgresql+psycopg2://airflow:airflow@{LOOPBACK}:{self.ports.postgres}/airflow"

    @property
    def state_url(self) -> str:
        """The tenant state store's database, as compose's ``compute_state_default``."""
        assert self.ports is not None
        return f"postgresql+psycopg2://compute:compute@{LOOPBACK}:{self.ports.postgres}/compute_state"

    def environment(self) -> dict[str, str]:
        assert self.ports is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
        env.update(airflow_environment(self.ports, self.dags_folder, self.kubeconfig, self.home))
        env.update(
            {
                "AIRFLOW_HOME": str(self.home / "airflow"),
                "AIRFLOW__API__HOST": LOOPBACK,
                "AIRFLOW__API__PORT": str(self.ports.api),
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_SERVER_PORT": str(self.ports.scheduler_health),
                # several components on one host: the workers (Celery's prefork pool) may not
                # run as root unless told, and nothing here pickles
                "C_FORCE_ROOT": "true",
                # tells the workers and the triggerers apart in Airflow's records (stack_hostname.py)
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.harness.stack_hostname.hostname",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
                "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
            }
        )
        env.update(self._extra_env)
        return env

    # -- processes --------------------------------------------------------------------------

    def _pid_file(self, name: str) -> Path:
        return self.pids / f"{name}.pid"

    def pid(self, name: str) -> int | None:
        """The live process of service ``name``, or None."""
        try:
            pid_text, ticks = self._pid_file(name).read_text().split()
        except (OSError, ValueError):
            return None
        pid = int(pid_text)
        return pid if _start_ticks(pid) == ticks else None

    def service_names(self) -> list[str]:
        names = ["postgres", "redis"]
        if self.clouds:
            names.append("moto")
        names += ["api-server", "scheduler", "dag-processor"]
        names += [f"worker-{i}" for i in range(1, WORKERS + 1)]
        names += [f"triggerer-{i}" for i in range(1, TRIGGERERS + 1)]
        return names

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str], **kwargs: Any) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pids.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as log:
            # its own session: stopped by its group id, and a Ctrl-C of the caller spares it
            process = subprocess.Popen(
                argv,
                env=dict(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **kwargs,
            )
        self._pid_file(name).write_text(f"{process.pid} {_start_ticks(process.pid)}\n")
        return process.pid

    def _airflow_argv(self, name: str) -> list[str]:
        airflow = [sys.executable, "-m", "airflow"]
        if name.startswith("worker-"):
            # a Celery node name of its own: two workers on one host must not share one
            return [*airflow, "celery", "worker", "--celery-hostname", f"{name}@%h"]
        if name.startswith("triggerer-"):
            return [*airflow, "triggerer"]
        return [*airflow, name]

    def _component_env(self, name: str) -> dict[str, str]:
        assert self.ports is not None
        env = self.environment()
        if name.startswith("worker-"):
            index = int(name.split("-")[1]) - 1
            env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"] = str(self.ports.worker_logs[index])
            env["COMPUTE_STACK_HOSTNAME"] = component_hostname(name)
        if name.startswith("triggerer-"):
            index = int(name.split("-")[1]) - 1
            env["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"] = str(self.ports.trigger_logs[index])
            env["COMPUTE_STACK_HOSTNAME"] = component_hostname(name)
        return env

    def start_component(self, name: str) -> int:
        """(Re)start one Airflow component: ``worker-1``, ``triggerer-2``, ``scheduler``..."""
        self._load()
        return self._spawn(name, self._airflow_argv(name), self._component_env(name), cwd=self.home)

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal the process group of service ``name`` (SIGKILL: the whole tree dies at once)."""
        pid = self.pid(name)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, sig)

    def _stop(self, name: str, timeout: float = 30.0) -> None:
        pid = self.pid(name)
        if pid is None:
            self._pid_file(name).unlink(missing_ok=True)
            return
        # postgres: SIGINT is its fast shutdown; everything else takes SIGTERM
        first = signal.SIGINT if name == "postgres" else signal.SIGTERM
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, first)
        deadline = time.monotonic() + timeout
        while self.pid(name) is not None and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)  # and whatever outlived the leader
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        self._pid_file(name).unlink(missing_ok=True)

    # -- PostgreSQL and Redis ---------------------------------------------------------------

    def _pg_account(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                return pwd.getpwnam(name)
        raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' account exists")

    def _pg_kwargs(self) -> dict[str, Any]:
        account = self._pg_account()
        if account is None:
            return {}
        return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": [], "cwd": str(self.home)}

    def _start_postgres(self) -> None:
        assert self.ports is not None
        bindir = find_postgres_bindir()
        if bindir is None:
            raise RuntimeError("no PostgreSQL server binaries: run scripts/ensure-postgres (make test-deps)")
        datadir = self.home / "pgdata"
        fresh = not (datadir / "PG_VERSION").exists()
        account = self._pg_account()
        if fresh:
            datadir.mkdir(parents=True, exist_ok=True)
            if account is not None:
                for path in (self.home, datadir):
                    os.chown(path, account.pw_uid, account.pw_gid)
            subprocess.run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(datadir),
                    "-U",
                    "airflow",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
                check=True,
                capture_output=True,
                **self._pg_kwargs(),
            )
        argv = [str(bindir / "postgres"), "-D", str(datadir), "-h", LOOPBACK, "-p", str(self.ports.postgres)]
        argv += ["-k", str(self.home), "-c", "max_connections=300", "-c", "fsync=off"]
        argv += ["-c", "synchronous_commit=off"]
        self._spawn("postgres", argv, os.environ, **self._pg_kwargs())
        wait_until(self._postgres_ready, 60, "PostgreSQL")
        if fresh:
            self._psql("CREATE DATABASE airflow", database="postgres")
            # the tenant state store's role and database, exactly as compose creates them
            self._psql((REPO_ROOT / "deploy" / "postgres-init.sql").read_text(), database="postgres")

    def _postgres_ready(self) -> bool:
        import psycopg2

        assert self.ports is not None
        try:
            psycopg2.connect(
                host=LOOPBACK, port=self.ports.postgres, user="airflow", dbname="postgres", connect_timeout=2
            ).close()
            return True
        except psycopg2.OperationalError:
            return False

    def _psql(self, sql: str, *, database: str) -> None:
        import psycopg2

        assert self.ports is not None
        conn = psycopg2.connect(host=LOOPBACK, port=self.ports.postgres, user="airflow", dbname=database)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                for statement in (s.strip() for s in _without_comments(sql).split(";")):
                    if statement:
                        cur.execute(statement)
        finally:
            conn.close()

    def restart_postgres(self, down_seconds: float = 3.0) -> None:
        """Stop PostgreSQL (fast shutdown: sessions are cut) and start it again on its port."""
        self._stop("postgres")
        time.sleep(down_seconds)
        self._start_postgres()

    def _start_redis(self) -> None:
        assert self.ports is not None
        redis = shutil.which("redis-server")
        if redis is None:
            raise RuntimeError("no redis-server: run scripts/ensure-redis (make test-deps)")
        argv = [redis, "--bind", LOOPBACK, "--port", str(self.ports.redis), "--dir", str(self.home)]
        argv += ["--save", "", "--appendonly", "no", "--daemonize", "no"]
        self._spawn("redis", argv, os.environ)
        wait_until(lambda: port_accepts(self.ports.redis), 30, "Redis")  # type: ignore[union-attr]

    # -- clouds (compose's moto and k3s) ----------------------------------------------------

    def _start_clouds(self) -> None:
        assert self.ports is not None
        argv = [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self.ports.moto)]
        self._spawn("moto", argv, os.environ)
        env = {**self.environment(), "MOTO_ENDPOINT": f"http://{LOOPBACK}:{self.ports.moto}"}
        env["CONF_FILE"] = str(self.home / "ecs-conf.json")
        env.setdefault("AWS_ACCESS_KEY_ID", "testing")
        env.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        self._run([sys.executable, str(REPO_ROOT / "deploy" / "bootstrap_moto.py")], env, "moto-bootstrap")
        cluster = subprocess.run(
            [str(REPO_ROOT / "scripts" / "test-cluster"), "up"],
            env=self._cluster_env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if cluster.returncode != 0:
            (self.logs / "test-cluster.log").write_text(cluster.stdout + cluster.stderr)
            print("stack: no Kubernetes cluster (see logs/test-cluster.log); ECS only", file=sys.stderr)
            return
        self.kubeconfig = Path(cluster.stdout.strip().splitlines()[-1])
        from kubernetes import client, config

        api = client.CoreV1Api(config.new_client_from_config(str(self.kubeconfig)))
        with contextlib.suppress(client.ApiException):  # 409: it exists already
            api.create_namespace({"metadata": {"name": "tenants"}})

    def _cluster_env(self) -> dict[str, str]:
        # the cluster's run dir inside the stack's home: another checkout's cluster is not ours
        return {**os.environ, "TEST_CLUSTER_DIR": str(self.home / "test-cluster"), "PYTHON": sys.executable}

    # -- up / down / status -----------------------------------------------------------------

    def _run(self, argv: list[str], env: Mapping[str, str], name: str) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with open(self.logs / f"{name}.log", "ab") as log:
            done = subprocess.run(argv, env=dict(env), stdout=log, stderr=subprocess.STDOUT, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{name} failed ({done.returncode}); see {self.logs / (name + '.log')}")

    def up(self) -> None:
        self._load()
        if self.ports is None:
            self.ports = Ports.pick(self._api_port)
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "airflow").mkdir(exist_ok=True)
        if self.pid("postgres") is None:
            self._start_postgres()
        if self.pid("redis") is None:
            self._start_redis()
        if self.clouds and self.pid("moto") is None:
            self._start_clouds()
        self._save()
        self._run([sys.executable, "-m", "airflow", "db", "migrate"], self.environment(), "airflow-init")
        for name in self.service_names():
            if name in ("postgres", "redis", "moto") or self.pid(name) is not None:
                continue
            self.start_component(name)
        try:
            wait_until(self._healthy, START_TIMEOUT, "the stack's api-server, scheduler and triggerers")
        except Exception as exc:
            raise RuntimeError(f"{exc}; {self.status_text()}") from None
        self._start_supervisor()

    # -- the restart policy (compose's ``restart: unless-stopped``) -----------------------------

    def airflow_components(self) -> list[str]:
        return [n for n in self.service_names() if n not in ("postgres", "redis", "moto")]

    def revive(self) -> list[str]:
        """Start every Airflow component that is not running; the ones started."""
        started = [n for n in self.airflow_components() if self.pid(n) is None]
        for name in started:
            self.start_component(name)
        return started

    def supervise(self, interval: float = 5.0) -> None:
        """Compose's ``restart: unless-stopped`` for the Airflow components, until ``down``:
        Airflow's components exit when they lose the metadata database for long (a
        PostgreSQL restart), and a killed one must come back. The stores are left alone:
        whoever stops PostgreSQL starts it again."""
        self._load()
        while True:
            time.sleep(interval)
            for name in self.revive():
                print(f"{time.strftime('%H:%M:%S')} restarted {name}", flush=True)

    def _start_supervisor(self) -> None:
        if self.pid("supervisor") is None:
            argv = [sys.executable, "-m", "tests.harness.celery_stack", "supervise", "--home", str(self.home)]
            self._spawn("supervisor", argv, {**os.environ, "PYTHONPATH": str(REPO_ROOT)}, cwd=REPO_ROOT)

    def _save(self) -> None:
        assert self.ports is not None
        self._settings_file.write_text(
            json.dumps(
                {
                    "ports": self.ports.__dict__,
                    "dags_folder": str(self.dags_folder),
                    "kubeconfig": str(self.kubeconfig) if self.kubeconfig else None,
                    "clouds": self.clouds,
                    "extra_env": self._extra_env,
                },
                indent=2,
            )
        )

    def health(self) -> dict[str, Any] | None:
        import requests

        self._load()
        if self.ports is None or not port_accepts(self.ports.api):
            return None
        try:
            answer = requests.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        except requests.RequestException:
            return None
        return answer.json() if answer.status_code == 200 else None

    def _healthy(self) -> bool:
        dead = [n for n in self.service_names() if self.pid(n) is None]
        if dead:
            raise RuntimeError(f"exited: {', '.join(dead)}")
        body = self.health() or {}
        return all(
            body.get(part, {}).get("status") == "healthy"
            for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
        )

    def down(self) -> None:
        self._load()
        # the supervisor first (it would restart what stops), Airflow next, the stores last
        for name in ["supervisor", *reversed(self.service_names())]:
            self._stop(name)
        if self.clouds and self.kubeconfig is not None:
            subprocess.run(
                [str(REPO_ROOT / "scripts" / "test-cluster"), "down"], env=self._cluster_env(), check=False
            )

    def status_text(self) -> str:
        self._load()
        lines = []
        for name in [*self.service_names(), "supervisor"]:
            pid = self.pid(name)
            lines.append(f"{name:<14} {'running pid ' + str(pid) if pid else 'stopped'}")
        health = self.health()
        if health is not None:
            lines.append(f"health: {json.dumps({k: v.get('status') for k, v in health.items()})}")
            lines.append(f"url: {self.base_url}  login: {ADMIN_USER} / {ADMIN_PASSWORD}")
        return "\n".join(lines)

    def running(self) -> bool:
        return all(self.pid(n) is not None for n in self.service_names())


def _without_comments(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.strip().startswith("--"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/stack", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "status", "supervise"))
    parser.add_argument("--home", type=Path, default=Path(os.environ.get("STACK_HOME", DEFAULT_HOME)))
    parser.add_argument("--port", type=int, default=int(os.environ.get("STACK_PORT", "8080")))
    parser.add_argument("--no-clouds", action="store_true", help="no moto server, no Kubernetes cluster")
    args = parser.parse_args(argv)
    stack = CeleryStack(args.home, api_port=args.port, clouds=not args.no_clouds)
    if args.command == "up":
        stack.up()
        print(stack.status_text())
        print(f"logs: {stack.logs}")
        return 0
    if args.command == "supervise":  # started by `up`, in the background
        stack.supervise()
        return 0
    if args.command == "down":
        stack.down()
        return 0
    print(stack.status_text())
    return 0 if stack.running() else 1


if __name__ == "__main__":
    sys.exit(main())
