"""``python -m airflow_compute_provider.state``: see cli.py."""

from airflow_compute_provider.state.cli import main

raise SystemExit(main())
