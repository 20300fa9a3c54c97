"""A throwaway PostgreSQL server for the tests: one per session, a fresh database per test.

    PostgresServer   initdb into a temp dir, run ``postgres`` on 127.0.0.1 and a free port, stop it
    postgres_server  session fixture: the running server
    postgres_url     session fixture: SQLAlchemy URL of a database created once for the session
    postgres_db_url  function fixture: SQLAlchemy URL of a database created for this test only

URLs look like ``postgresql+psycopg2://compute@127.0.0.1:PORT/DBNAME`` (trust authentication on
loopback, no password). The server runs with ``fsync=off``: a test database needs speed, not
durability.

Binaries are looked up in PATH and then in Debian's ``/usr/lib/postgresql/<version>/bin``;
``scripts/ensure-postgres`` installs Debian's ``postgresql`` package when neither has them.
PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user (which
the Debian package creates) or, failing that, ``nobody``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.ports import LOOPBACK, free_port, wait_until

SUPERUSER = "compute"
SESSION_DB = "compute_test"
START_TIMEOUT = 60.0


def find_postgres_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``, newest Debian version first after PATH."""
    on_path = shutil.which("postgres")
    if on_path and shutil.which("initdb"):
        return Path(os.path.realpath(on_path)).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    for bindir in candidates:
        if (Path(bindir) / "postgres").exists() and (Path(bindir) / "initdb").exists():
            return Path(bindir)
    return None


def _run_as() -> pwd.struct_passwd | None:
    """The account to run the server as; None means the current one (we are not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' account exists")


class PostgresServer:
    """One ``postgres`` process over a fresh data directory; ``stop()`` removes everything."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = 0
        self._account = _run_as()
        self._root = Path(tempfile.mkdtemp(prefix="compute-pg-"))
        self._datadir = self._root / "data"
        self._logfile = self._root / "postgres.log"
        self._proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        if self._account is not None:
            os.chown(self._root, self._account.pw_uid, self._account.pw_gid)
        self._run(
            [
                str(self.bindir / "initdb"),
                "--pgdata",
                str(self._datadir),
                "--username",
                SUPERUSER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-sync",
            ]
        )
        # A free port can be taken between probing and binding; a second port then is enough.
        for _attempt in range(3):
            self.port = free_port()
            self._spawn()
            try:
                wait_until(self._ready, START_TIMEOUT, "PostgreSQL to accept connections")
                return
            except TimeoutError:
                if self._proc is not None and self._proc.poll() is None:
                    raise RuntimeError(self._log_tail()) from None
        raise RuntimeError(f"PostgreSQL did not start:\n{self._log_tail()}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            # SIGINT is PostgreSQL's "fast" shutdown: roll back sessions, then exit cleanly.
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self._root, ignore_errors=True)

    # -- databases --------------------------------------------------------------------------

    def url(self, database: str) -> str:
        return f"postgresql+psycopg2://{SUPERUSER}@{LOOPBACK}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        self._admin_sql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        self._admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # -- internals --------------------------------------------------------------------------

    def _spawn(self) -> None:
        log = open(self._logfile, "ab")  # noqa: SIM115 - handed to the child, closed below
        try:
            self._proc = subprocess.Popen(
                [
                    str(self.bindir / "postgres"),
                    "-D",
                    str(self._datadir),
                    "-h",
                    LOOPBACK,
                    "-p",
                    str(self.port),
                    "-k",
                    str(self._root),  # the Unix socket stays in our temp dir, not /var/run
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                    "-c",
                    "max_connections=200",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own session: a Ctrl-C in pytest must not kill it before teardown runs.
                start_new_session=True,
                **self._user_kwargs(),
            )
        finally:
            log.close()

    def _ready(self) -> bool:
        import psycopg2

        if self._proc is not None and self._proc.poll() is not None:
            raise TimeoutError("postgres exited")  # lets start() retry on another port
        try:
            psycopg2.connect(
                host=LOOPBACK, port=self.port, user=SUPERUSER, dbname="postgres", connect_timeout=2
            ).close()
            return True
        except psycopg2.OperationalError:
            return False

    def _admin_sql(self, statement: str) -> None:
        import psycopg2

        conn = psycopg2.connect(host=LOOPBACK, port=self.port, user=SUPERUSER, dbname="postgres")
        try:
            conn.autocommit = True  # CREATE / DROP DATABASE cannot run inside a transaction
            with conn.cursor() as cur:
                cur.execute(statement)
        finally:
            conn.close()

    def _run(self, argv: list[str]) -> None:
        result = subprocess.run(argv, capture_output=True, check=False, **self._user_kwargs())
        if result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {result.stdout.decode()}{result.stderr.decode()}")

    def _user_kwargs(self) -> dict[str, Any]:
        if self._account is None:
            return {}
        return {
            "user": self._account.pw_uid,
            "group": self._account.pw_gid,
            "extra_groups": [],
            "cwd": str(self._root),  # the server account may not be able to read our cwd
        }

    def _log_tail(self) -> str:
        try:
            return self._logfile.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = find_postgres_bindir()
    if bindir is None:
        pytest.fail("no PostgreSQL server binaries found; run scripts/ensure-postgres (make test-deps)")
    server = PostgresServer(bindir)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """A database shared by the whole session."""
    return postgres_server.create_database(SESSION_DB)


@pytest.fixture
def postgres_db_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A database of this test's own, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)
