"""Write one batch into the central database inside the caller's transaction.

Rows are staged in a temporary table (COPY on PostgreSQL; where workers protect the batch, they COPY into a
table of its own in lidm_stage: lidm.central.stage), then duplicates within the batch go to quarantine, the
rest is upserted on the contract key (a row whose digest is unchanged is left alone, so a re-run changes
nothing), and a full snapshot retires the rows it no longer contains.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects import sqlite

from lidm.central.copyin import CopyInput
from lidm.central.schema import Token, quarantine
from lidm.central.stage import SharedStage, StageCopier, stage_name
from lidm.contracts.model import Classification, Contract, Protection

SOURCE_ROW = "_source_row"
SOURCE_LINE = "_source_line"  # a text file's line where the row starts: duplicates are reported by line too
DUPLICATES_PER_FETCH = 5_000  # rows of repeated keys read at a time to be held back


def _json_value(value: Any) -> str:
    """A held row's protected values as JSON text: the sealed row in base64, dates and numbers as text."""
    return base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else str(value)


@dataclass
class LoadCounts:
    loaded: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    retired: int = 0
    duplicates: int = 0
    live_before: int = 0  # live rows of the dataset before a full snapshot applied (the shrink guard's base)
    resolved: int = 0  # earlier quarantined rows of the feed whose key this batch loaded


class BatchWriter:
    """Stages protected chunks and applies them to the dataset table in one go, inside the batch's transaction."""

    def __init__(
        self,
        conn: sa.Connection,
        contract: Contract,
        table: sa.Table,
        batch_id: str,
        feed: str,
        *,
        work_mem: str | None = None,
        source_names: Mapping[str, str] | None = None,
        shared: SharedStage | None = None,
    ) -> None:
        self.conn = conn
        self.source_names = source_names or {}  # contract field -> the department's column, to name held rows
        self.work_mem = work_mem  # PostgreSQL: memory for the final sort and hashes of the staged rows
        self.contract = contract
        self.table = table
        self.batch_id = batch_id
        self.feed = feed
        self.dialect = conn.dialect.name
        self.key = contract.key_columns()
        # A tokenized key is kept with a held row (lidm_quarantine.key_token, binary); a department's own key is not
        # a token: the duplicates of this batch held under one are remembered here, so a snapshot does not retire them.
        self.token_key = isinstance(table.c[self.key[0]].type, Token)
        self.held_keys: list[Any] = []
        md = sa.MetaData()
        cols = [sa.Column(c.name, c.type) for c in table.columns]
        cols += [sa.Column(SOURCE_ROW, sa.BigInteger), sa.Column(SOURCE_LINE, sa.BigInteger)]
        self.shared = shared  # the stage the batch's workers fill, on PostgreSQL with workers; else a temporary one
        if shared is not None:
            self.stage = shared.create(sa.Table(stage_name(table.name, batch_id), md, *cols))
        else:
            self.stage = sa.Table(f"lidm_stage_{table.name}", md, *cols, prefixes=["TEMPORARY"])
            self.stage.drop(conn, checkfirst=True)
            self.stage.create(conn)
        self.quarantined = 0
        # PostgreSQL takes the stage's rows by COPY, binary where every column's type allows; SQLite by INSERT.
        hex_columns = [c.name for c in self.stage.columns if isinstance(c.type, Token)]  # Digest too
        self.copy_input = CopyInput(self.stage, conn.dialect, hex_columns) if self.dialect == "postgresql" else None

    @property
    def sink(self) -> StageCopier | None:
        """What a worker process stages its chunks with, when the stage is shared; None: hand them back."""
        if self.shared is None or self.copy_input is None:
            return None
        return self.shared.copier(self.copy_input)

    def take(self, quarantine: list[dict[str, Any]], copy: bytes | None, protected: pa.Table | None) -> None:
        """One transformed chunk: its held-back rows, and its rows unless a worker staged them already."""
        if quarantine:
            self.quarantine(quarantine)
        elif copy is None and (protected is None or not protected.num_rows):
            # Workers staged the rows: the batch's transaction says something anyway, as it did when it staged
            # them itself, or the server would take a long batch for a hung one and end it (its idle timeout).
            self.conn.execute(sa.text("SELECT 1"))
        if copy is not None:
            self.write_copy(copy)
        elif protected is not None and protected.num_rows:
            self.write(protected)

    def write(self, chunk: pa.Table) -> None:
        """Stage a protected chunk whose columns are the table's columns plus the source row number."""
        if chunk.num_rows == 0:
            return
        if self.copy_input is not None:
            self.write_copy(self.copy_input.render(chunk))
        else:
            self.conn.execute(self.stage.insert(), chunk.select([c.name for c in self.stage.columns]).to_pylist())

    def write_copy(self, data: bytes | memoryview) -> None:
        """Stage rows already rendered by `copy_input` (PostgreSQL only)."""
        if not data:
            return
        assert self.copy_input is not None
        raw = self.conn.connection.driver_connection
        stage = self.conn.dialect.identifier_preparer.format_table(self.stage)
        with raw.cursor() as cur, cur.copy(self.copy_input.statement(stage)) as copy:
            copy.write(data)

    def quarantine(self, rows: list[dict[str, Any]]) -> None:
        """Record bad rows: one quarantine row per source row, whatever number of problems it has."""
        if rows:
            self.conn.execute(quarantine.insert(), [{"batch_id": self.batch_id, "feed": self.feed} | r for r in rows])
            self.quarantined += len(rows)

    def _locator(self, staged: Mapping[str, Any]) -> str | None:
        """A staged row named as transform.locator names one: key masked (its stored display form) or as it is,
        record time as it is, under the department's column names."""
        parts = []
        for name in dict.fromkeys((*self.contract.key, self.contract.record_time)):
            if name is None:
                continue
            f = self.contract.field(name)
            shown = (
                staged.get(name)
                if Protection.CLEAR in f.protection and f.classification is not Classification.DIRECT_IDENTIFIER
                else staged.get(f"{name}_masked")
            )
            if shown is not None and shown != "":
                parts.append(f"{self.source_names.get(name, name)}={shown}")
        return " ".join(parts)[:200] or None

    def _key_match(self, a: sa.Table, b: sa.Table) -> sa.ColumnElement[bool]:
        return sa.and_(*(a.c[k] == b.c[k] for k in self.key))

    def _quarantine_duplicates(self) -> int:
        s = self.stage
        dup_keys = sa.select(*(s.c[k] for k in self.key)).group_by(*(s.c[k] for k in self.key))
        dup_keys = dup_keys.having(sa.func.count() > 1).subquery()
        found = self.conn.execute(
            sa.select(s)
            .join(dup_keys, self._key_match(s, dup_keys))
            .order_by(s.c[SOURCE_ROW])
            .execution_options(yield_per=DUPLICATES_PER_FETCH)
        )
        held = 0
        for part in found.mappings().partitions():  # a batch of nothing but repeats is held back in bounded memory
            self._hold_duplicates(part)
            held += len(part)
        if held:
            self.conn.execute(s.delete().where(sa.exists().where(self._key_match(s, dup_keys))))
        return held

    def _hold_duplicates(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if not self.token_key:
            self.held_keys += list(dict.fromkeys(r[self.key[0]] for r in rows))
        self.quarantine(
            [
                {
                    "row_number": r[SOURCE_ROW],
                    "line_number": r[SOURCE_LINE],
                    "locator": self._locator(r),
                    "field": self.contract.key[0],
                    "reason": "duplicate_key",
                    "message": f"key {', '.join(self.contract.key)} appears more than once in this batch; "
                    "every occurrence is held back for review",
                    "key_token": r[self.key[0]] if self.token_key else None,
                    "row_digest": r["_row_digest"],
                    "payload_kind": "protected",
                    "payload": json.dumps(
                        {k: v for k, v in r.items() if k not in (SOURCE_ROW, SOURCE_LINE)},
                        default=_json_value,
                        ensure_ascii=False,
                    ),
                }
                for r in rows
            ]
        )

    def finish(self, *, retire_missing: bool) -> LoadCounts:
        """Apply the staged rows; counts say what changed."""
        if self.dialect != "postgresql":
            # SQLite has no hash joins: the key index turns the joins below (and the retirement's anti-join)
            # from quadratic into linear. PostgreSQL hashes the stage instead, cheaper than indexing it.
            sa.Index(f"ix_{self.stage.name}_key", *(self.stage.c[k] for k in self.key)).create(self.conn)
        if self.dialect == "postgresql" and self.work_mem:
            self.conn.execute(sa.text(f"SET LOCAL work_mem = '{self.work_mem}'"))  # until the batch commits
        counts = LoadCounts(duplicates=self._quarantine_duplicates())
        s, t = self.stage, self.table
        # The three counts in one pass over the stage and its join, not three.
        unchanged = sa.and_(t.c._row_digest == s.c._row_digest, t.c._retired_batch.is_(None))
        loaded, existing, counts.unchanged = self.conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.count(t.c[self.key[0]]),
                sa.func.coalesce(sa.func.sum(sa.case((unchanged, 1), else_=0)), 0),
            ).select_from(s.outerjoin(t, self._key_match(s, t)))
        ).one()
        counts.loaded = loaded
        counts.inserted = counts.loaded - existing
        counts.updated = existing - counts.unchanged

        if retire_missing:
            live = sa.select(sa.func.count()).select_from(t).where(t.c._retired_batch.is_(None))
            counts.live_before = self.conn.execute(live).scalar_one()
        self._apply()
        if retire_missing:
            counts.retired = self._retire()
        counts.resolved = self._resolve_quarantine()
        self.stage.drop(self.conn)
        return counts

    def _resolve_quarantine(self) -> int:
        """A corrected row re-sent later settles its quarantined predecessors (same feed, same key token)."""
        key = self.key[0]
        if not self.token_key:
            return 0  # only a tokenized key is kept with a quarantined row
        q = quarantine
        result = self.conn.execute(
            q.update()
            .where(
                q.c.feed == self.feed,
                q.c.resolved_batch.is_(None),
                q.c.batch_id != self.batch_id,
                q.c.key_token.in_(sa.select(self.stage.c[key])),
            )
            .values(resolved_batch=self.batch_id, resolved_at=datetime.now(UTC))
        )
        return result.rowcount

    def _retire(self) -> int:
        """A full snapshot retires the rows it no longer contains (rows held in quarantine stay live)."""
        s, t = self.stage, self.table
        held = sa.select(quarantine.c.key_token).where(
            quarantine.c.batch_id == self.batch_id, quarantine.c.key_token.is_not(None)
        )
        kept = t.c[self.key[0]].not_in(held) if self.token_key else t.c[self.key[0]].not_in(self.held_keys)
        result = self.conn.execute(
            t.update()
            .where(
                t.c._retired_batch.is_(None),
                t.c._batch_id != self.batch_id,  # written by this batch, so in it: no anti-join needed
                ~sa.exists().where(self._key_match(s, t)),
                kept,
            )
            .values(_retired_batch=self.batch_id)
        )
        return result.rowcount

    def _apply(self) -> None:
        """Changed rows are updated, new ones inserted; unchanged rows are not written at all."""
        s, t = self.stage, self.table
        cols = [c.name for c in t.columns]
        changed = sa.or_(t.c._row_digest != s.c._row_digest, t.c._retired_batch.is_not(None))
        if self.dialect == "postgresql":
            # Two plain statements instead of INSERT … ON CONFLICT: no speculative insertion per row.
            self.conn.execute(
                t.update()
                .where(self._key_match(s, t), changed)
                .values({c: s.c[c] for c in cols if c not in self.key} | {"_retired_batch": None})
            )
            # New rows go in key order: the key index then grows page by page instead of at random places.
            new = (
                sa.select(*(s.c[c] for c in cols))
                .where(~sa.exists().where(self._key_match(s, t)))
                .order_by(*(s.c[k] for k in self.key))
            )
            self.conn.execute(t.insert().from_select(cols, new))
            return
        ins = sqlite.insert(t)
        select = sa.select(*(s.c[c] for c in cols)).where(sa.true())
        self.conn.execute(
            ins.from_select(cols, select).on_conflict_do_update(
                index_elements=self.key,
                set_={c: ins.excluded[c] for c in cols if c not in self.key} | {"_retired_batch": None},
                where=sa.or_(t.c._row_digest != ins.excluded._row_digest, t.c._retired_batch.is_not(None)),
            )
        )
