"""``[core] hostname_callable`` of the distributed stack's components (tests/harness/celery_stack.py).

Every component runs on this one machine, but two workers and two triggerers must be told apart
in Airflow's records (a task instance's ``hostname``, a triggerer job's): each gets a loopback
address of its own (Linux routes all of 127.0.0.0/8 to itself, so each still resolves), from
``COMPUTE_STACK_HOSTNAME``.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("COMPUTE_STACK_HOSTNAME") or socket.getfqdn()
