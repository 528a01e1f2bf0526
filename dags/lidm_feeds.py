"""One DAG per registered lidm adapter (feed); everything is built from the adapter registry and contracts."""

from lidm.integrations.airflow.dags import build_feed_dags

globals().update(build_feed_dags())
