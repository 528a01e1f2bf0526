"""How a run writes a rule's new warnings: a few set-based statements per rule, never one per warning.

A run keeps each rule's matches in a temporary table of their own (``matches``) and, with a keyring, the evidence
digests of the people about to be warned in another (``digests_table``, lidm.monitor.quiet). The warnings are one
INSERT … SELECT from those tables (``new_warnings``); their state rows and "raised" events are two more over the
same SELECT (``state_and_events``), so none of them reads back the warning table, which grows with every rule of
the run (an index scan of the run's warnings per rule made the writes quadratic in the run's size).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa

from lidm.central.schema import warning_event, warning_state
from lidm.contracts.model import SEALED
from lidm.monitor import routing, scratch
from lidm.monitor.engine import SUBJECT_COLUMNS, Compiled

_DIGEST_ROWS = 10_000  # digest rows per executemany (SQLAlchemy sends them as multi-row INSERTs of 1,000)


def matches(conn: sa.Connection, w: sa.Table, compiled: Compiled) -> sa.Table:
    """A temporary table of the rule's matches (Compiled.matches: the person's token, category and what a warning
    copies), made by the rule's query in one CREATE TABLE … AS (lidm.monitor.scratch: planned in parallel where it
    pays), described with the types of the warning columns they become. The caller drops it after the rule."""
    cols = [sa.Column("subject_token", w.c.id_number_token.type)]
    cols += [sa.Column(n, w.c[n].type) for n in ("low_income_category", *SUBJECT_COLUMNS)]
    return scratch.table_as(conn, "lidm_run_matches", cols, compiled.matches(), key="subject_token")


def digests_table(conn: sa.Connection, w: sa.Table) -> sa.Table:
    """A temporary table for one rule's evidence digests at a time (token -> digest of the warning to raise)."""
    cols = [
        sa.Column("subject_token", w.c.id_number_token.type, primary_key=True),
        sa.Column("digest", w.c._row_digest.type, nullable=False),
    ]
    return scratch.table(conn, "lidm_run_digests", cols)


def keep_digests(conn: sa.Connection, table: sa.Table, digests: dict[Any, str]) -> int:
    """Write the digests of the warnings about to be raised (COPY on PostgreSQL, multi-row INSERTs elsewhere) into
    the empty ``table``; how many. The caller empties it once the rule's warnings are in."""
    if not digests:
        return 0
    if conn.dialect.name == "postgresql":
        bind = table.c.subject_token.type.bind_processor(conn.dialect) or (lambda v: v)  # hex -> the stored bytes
        raw = conn.connection.driver_connection
        with raw.cursor() as cur, cur.copy(f"COPY {table.name} (subject_token, digest) FROM STDIN") as copy:
            for token, digest in digests.items():
                copy.write_row((bind(token), digest))
        return len(digests)
    rows = [{"subject_token": t, "digest": d} for t, d in digests.items()]
    for chunk in _chunks(rows, _DIGEST_ROWS):
        conn.execute(sa.insert(table), chunk)
    return len(digests)


def new_warnings(
    compiled: Compiled,
    matches: sa.Table,
    run_id: str,
    index: int,
    now: datetime,
    due: date,
    where: sa.ColumnElement[bool],
    offset: int,
    digests: sa.Table | None = None,
) -> tuple[list[str], sa.Select[Any]]:
    """The warnings to raise for the matches ``where`` holds: column names and the SELECT for INSERT … SELECT.
    Numbered from ``offset`` + 1 in token order, so a second insert of the same run and rule continues the ids.
    With ``digests`` (a keyed run), each warning keeps its evidence digest; without, the run id, which no digest
    ever equals."""
    rule = compiled.rule
    summary = rule.summary_text()
    consumers = compiled._catalog.consumers
    holder, landed = routing.routed(
        consumers, rule.department, rule.level, matches.c.district_code, matches.c.street_code, compiled.levels
    )
    kept: sa.ColumnElement[Any] = sa.literal(run_id, sa.String)
    source: sa.FromClause = matches
    if digests is not None:
        source = matches.outerjoin(digests, digests.c.subject_token == matches.c.subject_token)
        kept = sa.func.coalesce(digests.c.digest, kept)
    new = (
        sa.select(
            _number(compiled, matches, run_id, index, offset).label("warning_id"),
            sa.literal(rule.id, sa.String).label("rule_id"),
            sa.literal(rule.hardship_type, sa.String).label("hardship_type"),
            sa.literal(rule.department, sa.String).label("target_department"),
            holder.label("target_consumer"),
            landed.label("action_level"),
            sa.literal(rule.urgency.value, sa.String).label("urgency"),
            matches.c.subject_token.label("id_number_token"),
            matches.c[SEALED],
            matches.c.id_number_masked,
            matches.c.name_masked,
            matches.c.household_id_token,
            matches.c.low_income_category,
            matches.c.district_code,
            matches.c.street_code,
            sa.literal(summary, sa.String).label("summary"),
            sa.literal(now, sa.DateTime).label("raised_at"),
            sa.literal(due, sa.Date).label("due_date"),
            sa.literal("raised", sa.String).label("status"),
            sa.literal(now, sa.DateTime).label("updated_at"),
            sa.literal(run_id, sa.String).label("_batch_id"),
            kept.label("_row_digest"),  # the evidence digest, when kept (lidm.monitor.quiet)
        )
        .select_from(source)
        .where(where)
    )
    return [c.name for c in new.selected_columns], new


def state_and_events(
    conn: sa.Connection,
    compiled: Compiled,
    matches: sa.Table,
    run_id: str,
    index: int,
    now: datetime,
    where: sa.ColumnElement[bool],
    offset: int,
) -> None:
    """The "raised" event and the state row of each warning new_warnings raised with the same arguments.

    Run after those warnings are inserted: the same matches, condition and numbering select the same people with
    the same ids again (the condition reads the matches and the warning state only). The state rows go last, since
    they are what the condition reads to leave out warnings already raised."""
    rule = compiled.rule
    raised = (
        sa.select(_number(compiled, matches, run_id, index, offset).label("warning_id"), matches.c.subject_token)
        .where(where)
        .subquery("raised")
    )
    conn.execute(
        sa.insert(warning_event).from_select(
            ["warning_id", "status", "at", "actor", "detail"],
            sa.select(
                raised.c.warning_id,
                sa.literal("raised", sa.String),
                sa.literal(now, sa.DateTime),
                sa.literal(f"monitor run {run_id}", sa.String),
                sa.literal(f"rule {rule.id} {rule.version}", sa.String),
            ),
        )
    )
    conn.execute(
        sa.insert(warning_state).from_select(
            [
                "warning_id",
                "rule_id",
                "rule_version",
                "subject_token",
                "department",
                "raised_run",
                "last_matched_run",
                "sealed_by",
            ],
            sa.select(
                raised.c.warning_id,
                sa.literal(rule.id, sa.String),
                sa.literal(rule.version, sa.String),
                raised.c.subject_token,
                sa.literal(rule.department, sa.String),
                sa.literal(run_id, sa.String),
                sa.literal(run_id, sa.String),
                sa.literal(rule.subject.feed, sa.String),
            ),
        )
    )


def _number(compiled: Compiled, matches: sa.Table, run_id: str, index: int, offset: int) -> sa.ColumnElement[str]:
    """A new warning's id: the run's day, run and rule, then its number among the rule's new ones in token order."""
    prefix = f"W{compiled.as_of:%Y%m%d}{run_id[:6]}{index:02d}-"
    number = sa.func.row_number().over(order_by=matches.c.subject_token) + offset
    return sa.literal(prefix, sa.String) + sa.cast(number, sa.String)


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
