"""The steps of one try, provider-agnostic: what ``operators/base.py`` drives, in order.

arguments.py      validation of every argument before any provider call
tries.py          Try: one try of one execution, as every step receives it
reconcile.py      adopt what an execution already launched; relaunch only what failed
launch.py         reconcile, then launch: intents, the launch request, lost answers claimed
ledger.py         a try's rows in the resource ledger, and the launch-to-running timer
deadline.py       a try's deadline: the operation's timeout and ``execution_timeout``
wait.py           waiting for the units: the trigger to defer to, or polling here
rollback.py       partial failures: stop what started, or leave it for ``retry_failed``
outcome.py        unit statuses -> the XCom result, or the operation's ComputeError
failure.py        a failed try recorded (XCom, metrics, state store) and raised
decisions.py      after Airflow decided on a retry: the tenant's state and the log level
xcom.py           where a failed task's ComputeError is left, and get_compute_error
task_instance.py  the Airflow task instance a try runs as, for the state store

Nothing here imports ``operators/`` or ``recovery/``; ``recovery/`` uses these steps
(``outcome.py``) without reaching into the operators.
"""
