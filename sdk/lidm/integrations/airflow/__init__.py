"""Airflow 3 glue, laid out by Airflow's roles as a provider package is.

- `hooks`: Airflow connections become what the SDK needs (source URLs, a department's channel).
- `triggers`, `sensors`: waiting, deferred, for a complete drop (`DropTrigger`, `DropSensor`).
- `tasks`: the task callables (run a feed, reconcile it, monitor, push, collect, purge).
- `operators`: `LidmFeedOperator` and `LidmReconcileOperator`, with OpenLineage lineage.
- `dags`, `monitor_dags`: the DAGs, built from the adapter registry, contracts and rules.

Imports point one way: hooks, then triggers/sensors and tasks, then operators, then the DAG builders. Airflow
is imported inside functions only (a class deriving from an Airflow class is built on first use, by its
module's `__getattr__`), so every module here, and the whole SDK, imports where Airflow is not installed. The
DAG files under `dags/` only call `build_feed_dags()` and `build_monitor_dags()`.
"""
