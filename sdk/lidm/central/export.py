"""A consumer's extract of one dataset, cut by its grant: the same columns and rows as its PostgreSQL view.

On PostgreSQL the database enforces grants itself (`lidm grants apply`); the embedded SQLite has no roles,
so there an export through this function is how a consumer gets data. Both paths use the one definition of
what a grant exposes (`grants.desired`), so they cannot drift apart.
Token columns leave as the consumer's pseudonyms, computed as in its released table.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from lidm.cells import csv_cell
from lidm.central import db, release
from lidm.central.grants import View, desired
from lidm.central.sqltext import ident
from lidm.config import Settings
from lidm.contracts.load import load_catalog
from lidm.errors import LidmError
from lidm.keys import load_keyring


@dataclass(frozen=True)
class ExportResult:
    consumer: str
    dataset: str
    path: Path
    rows: int
    columns: tuple[str, ...]
    withheld: tuple[str, ...]


def granted_view(settings: Settings, consumer: str, dataset: str) -> View:
    """The consumer's view of the dataset; refused when no grant gives it anything."""
    catalog = load_catalog(settings.contracts_dir)
    if dataset not in catalog:
        raise LidmError(f"no contract {dataset}; see `lidm contracts list`")
    for wanted in desired(catalog):
        if wanted.consumer.id != consumer:
            continue
        for view in wanted.views:
            if view.contract == dataset:
                return view
        raise LidmError(
            f"{consumer} has no grant on {dataset} that exposes a field; see `lidm contracts grants {consumer}`"
        )
    raise LidmError(f"no consumer {consumer} in contracts/consumers.yaml")


def export_dataset(settings: Settings, consumer: str, dataset: str, out: Path) -> ExportResult:
    """Write the consumer's granted columns and rows of a dataset as CSV (UTF-8 with BOM), atomically."""
    view = granted_view(settings, consumer, dataset)
    engine = db.connect_existing(settings)  # first: a central database that is not there is the first thing to say
    cols = ", ".join(ident(c) for c in view.columns)
    query = sa.text(f"SELECT {cols} FROM {ident(view.table)} WHERE {' AND '.join(view.conditions)}")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(view.columns)
    rows = 0
    try:
        # Tokens leave as the consumer's pseudonyms, exactly as its released table holds them (lidm.central.release).
        keys: dict[int, bytes] = {}
        if view.scopes:
            keyring = load_keyring(settings)
            scoped = dict(view.scopes)
            keys = {
                i: release.pseudonym_key(keyring, consumer, scoped[c])
                for i, c in enumerate(view.columns)
                if c in scoped
            }
        with engine.connect() as conn:
            for row in conn.execute(query):
                cells = [release.pseudonym(keys[i], v) if i in keys else v for i, v in enumerate(row)]
                writer.writerow([csv_cell(v) for v in cells])
                rows += 1
    except sa.exc.DBAPIError as exc:
        raise LidmError(f"export of {dataset}: {type(exc.orig).__name__}; run `lidm db upgrade` first") from None
    finally:
        engine.dispose()
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(f".{out.name}.part")
    part.write_bytes(("\ufeff" + buf.getvalue()).encode("utf-8"))
    os.replace(part, out)
    return ExportResult(consumer, dataset, out, rows, view.columns, view.withheld)
