"""The monitoring loop's DAGs: monitor (on the feeds' Assets), push (on the warnings' Asset), feedback (hourly)."""

from lidm.integrations.airflow.monitor_dags import build_monitor_dags

globals().update(build_monitor_dags())
