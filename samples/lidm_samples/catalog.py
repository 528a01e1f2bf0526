"""The catalogue of sample sources: every department's, and writing them where the feeds read them.

Above `lidm_samples.departments` (one module per department, built from `lidm_samples.sources`' blocks) and the
sources declared as data beside their adapters (`lidm_samples.declared`, built by `lidm_samples.generate`). A
dataset with both keeps its hand-written source: it models the real department's quirks, and the declaration is
not read.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from collections.abc import Iterable
from pathlib import Path

import sqlalchemy as sa

from lidm.config import Settings
from lidm.errors import ConfigError, SourceError
from lidm_samples import departments
from lidm_samples.declared import find_declarations, load_declaration
from lidm_samples.generate import declared_source
from lidm_samples.sources import (
    SampleReport,
    SampleSource,
    Servers,
    Written,
    csv_bytes,
    write_drop,
    write_table,
    xlsx_bytes,
)
from lidm_samples.world import World


def sample_sources(contracts_dir: Path | None = None) -> dict[str, SampleSource]:
    """Every dataset's sample source by feed: the hand-written ones of lidm_samples.departments, then those declared
    as data for the feeds that have none (checked against their adapters and the contracts of ``contracts_dir``,
    LIDM_CONTRACTS_DIR by default)."""
    found = hand_written_sources()
    declared = {feed: path for feed, path in find_declarations().items() if feed not in found}
    if declared:
        from lidm.contracts import load_catalog
        from lidm.registry import get_adapter

        catalog = load_catalog(contracts_dir or Settings().contracts_dir)
        for feed, path in declared.items():
            try:
                adapter = get_adapter(feed)
            except ConfigError as exc:
                raise ConfigError(f"{path}: declares the sample source of {feed}, but {exc}") from None
            if adapter.contract not in catalog:
                raise ConfigError(
                    f"{path}: adapter {feed} fills contract {adapter.contract}, which is not in the catalogue"
                )
            found[feed] = declared_source(load_declaration(path, feed), adapter, catalog[adapter.contract])
    return dict(sorted(found.items()))


def hand_written_sources() -> dict[str, SampleSource]:
    """The sample sources written in Python, by dataset, from the modules in lidm_samples.departments."""
    found: dict[str, SampleSource] = {}
    for info in sorted(pkgutil.iter_modules(departments.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{departments.__name__}.{info.name}")
        for source in getattr(module, "SOURCES", ()):
            if source.dataset in found:
                raise ConfigError(f"two sample sources for {source.dataset}")
            found[source.dataset] = source
    return dict(sorted(found.items()))


def write_sources(
    world: World,
    servers: Servers,
    *,
    bad: int = 0,
    datasets: Iterable[str] | None = None,
    contracts_dir: Path | None = None,
) -> SampleReport:
    """Build and write the sample source of each dataset (all by default)."""
    chosen = sample_sources(contracts_dir)
    if datasets is not None:
        wanted = list(datasets)
        unknown = sorted(set(wanted) - set(chosen))
        if unknown:
            raise ConfigError(f"no sample source for {', '.join(unknown)}; known: {', '.join(chosen)}")
        chosen = {d: chosen[d] for d in wanted}
    connections: dict[str, str] = {}
    written: list[Written] = []
    for source in chosen.values():
        table = source.build(world, bad)
        if source.table:
            try:
                write_url, conn_value = servers.sql_url(source)
                write_table(write_url, source.table, table)
            except Exception as exc:  # pyodbc is imported lazily: it needs unixODBC, which the demo does not
                if not isinstance(exc, sa.exc.DBAPIError) and type(exc).__module__ != "pyodbc":
                    raise
                raise SourceError(
                    f"sample source {source.dataset}: the {source.server} server refused the write "
                    f"({type(exc).__name__}); is it running, and may this login create databases?"
                ) from None
            where = f"{source.server if conn_value.startswith(('odbc:', 'postgresql')) else 'sqlite'}:{source.table}"
        else:
            assert source.file is not None
            conn_value = servers.drop_url(source)
            if source.file.endswith(".xlsx"):
                data = xlsx_bytes(list(table.columns), table.rows, source.serial_dates)
            else:
                data = csv_bytes(list(table.columns), table.rows, source.encoding)
            write_drop(conn_value, source.file, data)
            where = f"{'sftp' if conn_value.startswith('sftp://') else 'file'}:{source.file}"
        previous = connections.setdefault(source.connection, conn_value)
        if previous != conn_value:
            raise ConfigError(f"connection {source.connection} is declared on two different servers")
        written.append(
            Written(
                source.dataset,
                source.kind,
                source.connection,
                where,
                len(table.rows),
                dict(table.bad_kinds),
                table.expected_quarantine,
            )
        )
    return SampleReport(connections, written)


def save_connections(report: SampleReport, path: Path) -> None:
    """connections.json beside the sources: LIDM_CONNECTIONS for the CLI, or a template for Airflow."""
    path.write_text(json.dumps(report.connections, indent=2, ensure_ascii=False) + "\n", "utf-8")
