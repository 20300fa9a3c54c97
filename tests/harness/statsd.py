"""A StatsD server for tests: a UDP socket on a loopback port that keeps every line it receives.

StatsdReceiver   collects lines; ``packets(name)`` parses them, ``total(name, **tags)`` sums
                 them, ``airflow_env()`` is the environment that points Airflow at it
parse(line)      ``name[,tag=value...]:value|type`` -> Packet
statsd           the fixture: one receiver per test, closed afterwards
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.harness.ports import LOOPBACK


@dataclass(frozen=True)
class Packet:
    name: str
    tags: dict[str, str]
    value: float
    kind: str


def parse(line: str) -> Packet:
    """``name[,tag=value...]:value|type`` (StatsD with InfluxDB-style tags)."""
    head, _, rest = line.rpartition(":")
    value, _, kind = rest.partition("|")
    name, *pairs = head.split(",")
    return Packet(name, dict(pair.split("=", 1) for pair in pairs), float(value), kind.split("|")[0])


class StatsdReceiver:
    """A UDP socket on a loopback port, collecting every StatsD line sent to it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOOPBACK, 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                continue
            self.lines.extend(line for line in data.decode().splitlines() if line)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()

    def airflow_env(self) -> dict[str, str]:
        """``[metrics]`` settings that send Airflow's StatsD client here, tags InfluxDB-style."""
        return {
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": LOOPBACK,
            "AIRFLOW__METRICS__STATSD_PORT": str(self.port),
            "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
            "AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED": "True",
        }

    def packets(self, name: str) -> list[Packet]:
        return [p for p in map(parse, list(self.lines)) if p.name == name]

    def total(self, name: str, **tags: str) -> float:
        return sum(p.value for p in self.packets(name) if tags.items() <= p.tags.items())


@pytest.fixture
def statsd() -> Iterator[StatsdReceiver]:
    """A StatsD receiver for the test; ``statsd.airflow_env()`` points a child Airflow at it."""
    receiver = StatsdReceiver()
    yield receiver
    receiver.close()
