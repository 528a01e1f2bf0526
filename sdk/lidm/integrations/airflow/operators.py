"""The feed operators: one feed's pending batches into the central database, with OpenLineage lineage; and
the reconciliation of a database feed after its load.

`LidmFeedOperator` performs one action (run a feed) the way provider operators do; the work itself is the
SDK's `run_feed` (through `tasks.run_feed_task`), its connections come from Airflow connections through the
providers' hooks (`OdbcHook` builds the ODBC connection string, `PostgresHook` the database URL). When the
OpenLineage provider is installed, the operator reports its input (the department's table or drop folder)
and its output (the dataset's table in the central database); lineage names never carry a credential.

Like the drop sensor, the classes are built on first use (module `__getattr__`), so the SDK imports where
Airflow is not installed.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy.engine import make_url

from lidm.integrations.airflow.hooks import get_connection
from lidm.integrations.airflow.tasks import run_feed_task, run_reconcile_task

CENTRAL_NAMESPACE_SQLITE = "file"


def _namespace_of_url(url: str) -> tuple[str, str]:
    """(OpenLineage namespace, database prefix) of a SQLAlchemy URL, without user or password."""
    u = make_url(url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        return CENTRAL_NAMESPACE_SQLITE, str(u.database or "")
    scheme = {"postgresql": "postgres", "mysql": "mysql", "mariadb": "mysql", "mssql": "sqlserver"}.get(
        backend, backend
    )
    return f"{scheme}://{u.host}:{u.port or ''}".rstrip(":"), str(u.database or "")


def feed_lineage(feed: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(inputs, outputs) of a feed as OpenLineage (namespace, name) pairs."""
    from lidm.config import get_settings
    from lidm.contracts import load_catalog
    from lidm.registry import get_adapter

    settings = get_settings()
    adapter = get_adapter(feed)
    contract = load_catalog(settings.contracts_dir)[adapter.contract]
    namespace, database = _namespace_of_url(settings.effective_central_url)
    outputs = [(namespace, f"{database}.public.{contract.table}" if namespace != "file" else contract.table)]
    source = adapter.source
    conn = get_connection(source.connection)
    kind = (conn.conn_type or "").lower()
    extra = conn.extra_dejson or {}
    where, name = source.lineage(kind, conn.host, conn.port, conn.schema, extra)
    inputs = [(where, f"{feed}.query" if name == "query" else name)]
    return inputs, outputs


@cache
def _classes() -> dict[str, type]:
    from airflow.sdk import BaseOperator

    class LidmFeedOperator(BaseOperator):
        """Run one feed: every pending batch validated, protected and loaded whole, or rejected whole."""

        template_fields = ("feed",)
        ui_color = "#e8f4ea"

        def __init__(self, *, feed: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.feed = feed

        def execute(self, context: Any) -> list[dict[str, Any]]:
            return run_feed_task(self.feed)

        def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
            from airflow.providers.openlineage.extractors import OperatorLineage
            from openlineage.client.event_v2 import Dataset

            inputs, outputs = feed_lineage(self.feed)
            return OperatorLineage(
                inputs=[Dataset(namespace=ns, name=name) for ns, name in inputs],
                outputs=[Dataset(namespace=ns, name=name) for ns, name in outputs],
            )

    class LidmReconcileOperator(BaseOperator):
        """Compare a database feed's source with the central table (counts and keyed digests, no values)."""

        template_fields = ("feed",)
        ui_color = "#eef0fa"

        def __init__(self, *, feed: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.feed = feed

        def execute(self, context: Any) -> dict[str, Any]:
            return run_reconcile_task(self.feed)

    for cls in (LidmFeedOperator, LidmReconcileOperator):
        cls.__module__ = __name__
    return {"LidmFeedOperator": LidmFeedOperator, "LidmReconcileOperator": LidmReconcileOperator}


def __getattr__(name: str) -> type:
    if name in ("LidmFeedOperator", "LidmReconcileOperator"):
        return _classes()[name]
    raise AttributeError(name)
