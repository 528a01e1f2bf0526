"""The happiness list (幸福清单): every assistance a household received, from every department, one row each.

`build_assistance_records` materialises ``platform_assistance_record`` from the feeds that record assistance and
from the dispositions that granted some, one set-based statement pair per source (UPDATE … FROM for records
whose values changed, INSERT … SELECT for new ones), all in one transaction. Record ids are derived from the
source's key, so a rebuild finds its own rows again: nothing changed means nothing written.

Which feeds are sources, and how their columns become a record's, is data: one declaration per mapping in
``rules/assistance/`` (`lidm.monitor.assistance_spec`; rules/README.md, "The happiness list's sources"), so a
department's assistance joins the list without a change here. This module compiles declarations into SQL and
holds the decisions the contracts leave open, taken here once for every source:

- A monthly source (``period: monthly``: allowances whose feeds hold no payment rows, only who receives how much
  each month) gets one record per recipient *for the month of ``now``* on each build; run monthly or more
  often, the list accumulates one record per recipient per month. Past months are never touched again; the
  current month's record turns ``revoked`` if the row stops being ``live`` (suspended, terminated, amount 0 or
  gone from the snapshot) before the month is over.
- Rows of other sources map one to one. A row withdrawn by its department stays in the list as ``revoked``
  (each declaration says which of its codes mean withdrawn); it is never deleted, nor is it when the row leaves
  the feed. Only ``live`` rows are inserted; a source without a live condition has every row live.
- A person on the low-income roster is placed in the roster's household and district (their residence)
  even when the feed itself has no household (medical insurance, justice, health): one household, one chain
  (``on_roster: false`` for the roster itself).
- Dispositions are a source like the feeds (``platform.disposition.yaml``: granted and applied, else revoked).
  The same assistance reported by a department's feed and by a disposition appears twice (there is no shared
  key to match them on); the record's ``source`` tells them apart.
"""

from __future__ import annotations

import calendar
import functools
import hashlib
import operator
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from lidm.central.schema import Digest, Token, core_metadata, dataset_table, token_hex
from lidm.contracts.model import SEALED
from lidm.errors import RuleError
from lidm.monitor import assistance_spec as spec
from lidm.monitor import projects as plist

ASSISTANCE_CONTRACT = "platform.assistance_record"
ROSTER = "civil_affairs.low_income_roster"
RECORD_ID_MAX = 40
BUILD_LOCK = 0x6C69646D_68617070  # "lidmhapp": the PostgreSQL advisory lock one build holds
# The contract columns a source fills; a record changes when any of them does.
RECORD_COLUMNS = (
    "record_id",
    "household_id_token",
    "id_number_token",
    SEALED,  # the source row's sealed message, as a warning copies its subject's
    "id_number_masked",
    "department",
    "assistance_kind",
    "amount",
    "in_kind_description",
    "service_kind",
    "project_id",
    "period_start",
    "period_end",
    "granted_on",
    "disbursement_status",
    "source",
    "warning_id",
    "district_code",
    "street_code",
)


class _as_date(FunctionElement[date]):
    """A date from a 'YYYY-MM-DD…' string or a timestamp: CAST on most databases, date() on SQLite."""

    type = sa.Date()
    inherit_cache = True


@compiles(_as_date)
def _as_date_default(element: _as_date, compiler: Any, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS DATE)"


@compiles(_as_date, "sqlite")
def _as_date_sqlite(element: _as_date, compiler: Any, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)})"


class _md5(FunctionElement[str]):
    """Hex MD5 of a string: md5() where the database has it; on SQLite the function registered per build."""

    type = sa.String()
    inherit_cache = True


@compiles(_md5)
def _md5_default(element: _md5, compiler: Any, **kw: Any) -> str:
    return f"md5({compiler.process(element.clauses, **kw)})"


@compiles(_md5, "sqlite")
def _md5_sqlite(element: _md5, compiler: Any, **kw: Any) -> str:
    return f"lidm_md5({compiler.process(element.clauses, **kw)})"


def _sqlite_md5(value: str | None) -> str | None:
    return None if value is None else hashlib.md5(value.encode("utf-8"), usedforsecurity=False).hexdigest()


def _record_id(prefix: str, key: sa.ColumnElement[Any], *, token: bool = False) -> sa.ColumnElement[str]:
    """``prefix`` + the source key, at most 40 characters: a token is cut (it is already a keyed hash), a
    longer key is replaced by its MD5 after ``~`` (department keys do not contain ``~``)."""
    room = RECORD_ID_MAX - len(prefix)
    if token:  # the hex text the token was stored as before migration 0021: record ids stay the same
        return sa.literal(prefix, sa.String) + sa.func.substr(token_hex(key), 1, room, type_=sa.String)
    text = sa.cast(key, sa.String)
    return sa.case(
        (sa.func.length(text) <= room, sa.literal(prefix, sa.String) + text),
        else_=sa.literal(prefix + "~", sa.String) + sa.func.substr(_md5(text), 1, room - 1, type_=sa.String),
    )


def _null(type_: Any) -> sa.ColumnElement[Any]:
    # Typed, so PostgreSQL compares it with the target column (an untyped NULL in a subquery is text).
    return sa.cast(sa.null(), type_)


def _later(a: sa.ColumnElement[Any], b: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    return sa.case((a > b, a), else_=b)


def _label_case(catalog: Any, feed: str, field: str, column: sa.ColumnElement[Any]) -> sa.ColumnElement[str]:
    """The Chinese label of a code, from the contract's enum labels (the code itself when a label is missing)."""
    f = catalog[feed].field(field)
    whens = [
        (column == v, sa.literal(label or v, sa.String))
        for v, label in zip(f.enum or (), f.enum_labels or (), strict=False)
    ]
    return sa.case(*whens, else_=sa.cast(column, sa.String)) if whens else sa.cast(column, sa.String)


@dataclass
class _Ctx:
    """What every source's mapping needs: the tables, the month being recorded and today."""

    catalog: Any
    now: datetime
    md: sa.MetaData
    projects: Sequence[plist.Project] = ()

    def __post_init__(self) -> None:
        self.today = self.now.date()
        self.month_start = self.today.replace(day=1)
        last = calendar.monthrange(self.today.year, self.today.month)[1]
        self.month_end = self.today.replace(day=last)
        self.month = f"{self.today:%Y%m}"
        self.roster = self.table(ROSTER).alias("r") if ROSTER in self.catalog else None

    def table(self, feed: str) -> sa.Table:
        contract = self.catalog[feed]
        if contract.table in self.md.tables:
            return self.md.tables[contract.table]
        return dataset_table(contract, self.md)

    def d(self, value: date) -> sa.ColumnElement[date]:
        return sa.literal(value, sa.Date)


class _Compiler:
    """A declaration's expressions and conditions as SQL over one table (rules/README.md has the vocabulary)."""

    def __init__(self, ctx: _Ctx, feed: str, s: sa.FromClause) -> None:
        self.ctx, self.feed, self.s = ctx, feed, s
        self.live: sa.ColumnElement[bool] | None = None
        self.variables: dict[str, sa.ColumnElement[Any]] = {
            "$today": ctx.d(ctx.today),
            "$month_start": ctx.d(ctx.month_start),
            "$month_end": ctx.d(ctx.month_end),
            "$month": sa.literal(f"{ctx.today:%Y-%m}", sa.String),
        }

    def value(self, e: Any, type_: Any) -> sa.ColumnElement[Any]:
        """An expression; ``type_`` types its literals and nulls (the record column it fills)."""
        c = self.s.c
        if isinstance(e, spec.Column):
            return c[e.column]
        if isinstance(e, spec.Coalesce):
            return sa.func.coalesce(*(self.value(p, type_) for p in e.coalesce))
        if isinstance(e, spec.LaterOf):
            return _later(self.value(e.later_of[0], type_), self.value(e.later_of[1], type_))
        if isinstance(e, spec.Case):
            whens = [(self.cond(w.when), self.value(w.then, type_)) for w in e.case]
            return sa.case(*whens, else_=self.value(e.else_, type_))
        if isinstance(e, spec.Map):
            whens = [(c[e.map] == code, self.value(v, type_)) for code, v in e.values.items()]
            unlisted = self.value(e.else_, type_) if "else_" in e.model_fields_set else c[e.map]
            return sa.case(*whens, else_=unlisted)
        if isinstance(e, spec.AsDate):
            return _as_date(self.value(e.date, sa.String))
        if isinstance(e, spec.Text):
            return sa.cast(self.value(e.text, sa.String), sa.String)
        if isinstance(e, spec.Concat):
            return functools.reduce(operator.add, (self.value(p, sa.String) for p in e.concat))
        if isinstance(e, spec.Substr):
            return sa.func.substr(self.value(e.substr, sa.String), e.start, e.length, type_=sa.String)
        if isinstance(e, spec.Label):
            return _label_case(self.ctx.catalog, self.feed, e.label, c[e.label])
        if e is None:
            return _null(type_)
        if isinstance(e, str):
            return self.variables[e] if e in self.variables else sa.literal(e, sa.String)
        return sa.literal(e, sa.Date if isinstance(e, date) else type_)

    def operand(self, e: Any) -> Any:
        """What a column is compared with: a plain literal stays a value, typed by the column."""
        plain = not isinstance(e, BaseModel) and not (isinstance(e, str) and e in self.variables)
        return e if plain else self.value(e, sa.String)

    def parts(self, c: spec.Cond | None) -> list[sa.ColumnElement[bool]]:
        """A condition's tests, all of which must hold."""
        if c is None:
            return []
        out = [self.test(self.s.c[name], t) for name, t in c.tests.items()]
        if c.exists is not None:
            out.append(self.exists(c.exists))
        if c.live is not None:
            if self.live is None:  # the catalogue check refuses this first
                raise RuleError(f"{self.feed}: a condition asks live, and the declaration has no live condition")
            out.append(self.live if c.live else sa.not_(self.live))
        return out

    def cond(self, c: spec.Cond) -> sa.ColumnElement[bool]:
        parts = self.parts(c)
        return parts[0] if len(parts) == 1 else sa.and_(*parts)

    def test(self, col: sa.ColumnElement[Any], t: Any) -> sa.ColumnElement[bool]:
        if isinstance(t, list):
            return col.in_(t)
        if not isinstance(t, spec.Ops):
            return col.is_(None) if t is None else col == self.operand(t)
        parts = []
        if "not_" in t.model_fields_set:
            parts.append(col.not_in(t.not_) if isinstance(t.not_, list) else col != self.operand(t.not_))
        for op in ("gt", "ge", "lt", "le"):
            if op in t.model_fields_set:
                parts.append(getattr(operator, op)(col, self.operand(getattr(t, op))))
        if t.null is not None:
            parts.append(col.is_(None) if t.null else col.is_not(None))
        test = parts[0] if len(parts) == 1 else sa.and_(*parts)
        return sa.or_(col.is_(None), test) if t.or_null else test

    def exists(self, x: spec.Exists) -> sa.ColumnElement[bool]:
        """A row of another feed or platform table matching this one."""
        other: sa.FromClause = self.ctx.table(x.table) if x.table in self.ctx.catalog else core_metadata.tables[x.table]
        if other is self.s:
            other = other.alias("other")
        clauses = [other.c[theirs] == self.s.c[ours] for theirs, ours in x.match.items()]
        if "_retired_batch" in other.c:
            clauses.append(other.c._retired_batch.is_(None))
        clauses += _Compiler(self.ctx, x.table, other).parts(x.where)
        return sa.exists().where(*clauses)


def _project(ctx: _Ctx, src: spec.AssistanceSource, s: sa.Table, kind: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The record's programme of the project list: for dispositions, by its warning's rule, its outcome and kind;
    for a source, the programme naming it (told apart by the record's kind when several do); else null."""
    text = sa.String(40)
    if src.feed == plist.DISPOSITION_CONTRACT and "outcome" in s.c:
        w = dataset_table(ctx.catalog["platform.warning"], ctx.md) if "platform.warning" in ctx.catalog else None
        leads = plist.by_rule(ctx.projects)
        if w is None or not leads:
            return _null(text)
        rule = sa.select(w.c.rule_id).where(w.c.warning_id == s.c.warning_id).limit(1).scalar_subquery()
        whens = [(sa.and_(rule == r, s.c.outcome == o, kind == k), sa.literal(p, text)) for r, o, k, p in leads]
        return sa.case(*whens, else_=_null(text))
    found = plist.by_source(ctx.projects, src.path.stem)
    if len(found) == 1:
        return sa.literal(found[0][1], text)
    whens = [(kind == k, sa.literal(p, text)) for k, p in found]
    return sa.case(*whens, else_=_null(text)) if whens else _null(text)


def _service(ctx: _Ctx, declared: sa.ColumnElement[Any], project: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The declared service kind, else the programme's (a service programme names one)."""
    whens = [(project == p.id, sa.literal(p.service_kind, sa.String)) for p in ctx.projects if p.service_kind]
    return sa.func.coalesce(declared, sa.case(*whens, else_=_null(sa.Text))) if whens else declared


def _select(ctx: _Ctx, src: spec.AssistanceSource) -> sa.Select[Any]:
    """A SELECT of one declared source's rows shaped as records, with ``_live``: which may be inserted."""
    s = ctx.table(src.feed)
    x = _Compiler(ctx, src.feed, s)
    current = s.c._retired_batch.is_(None)
    if src.live is not None:
        # A row gone from the feed's snapshot is not live: its record (of this month) turns revoked.
        x.live = sa.and_(current, *x.parts(src.live))
        where = sa.and_(*x.parts(src.where)) if src.where is not None else None
    else:  # a one-to-one record stays as it was when its row leaves the feed
        where = sa.and_(current, *x.parts(src.where))
    if src.monthly:
        period = (ctx.d(ctx.month_start), ctx.d(ctx.month_end))
    else:
        p = src.period if isinstance(src.period, spec.Period) else spec.Period()
        period = (x.value(p.start, sa.Date), x.value(p.end, sa.Date))
    prefix = src.record_id.prefix.replace(spec.MONTH_IN_PREFIX, ctx.month)
    key = s.c[src.record_id.key]
    in_kind = src.in_kind_description

    frm: sa.FromClause = s
    household = s.c.household_id_token if "household_id_token" in s.c else _null(Token())
    district = s.c.district_code
    street = s.c.street_code if "street_code" in s.c else _null(sa.Text)
    r = ctx.roster
    if src.on_roster and r is not None:
        frm = s.outerjoin(r, sa.and_(r.c.id_number_token == s.c.id_number_token, r.c._retired_batch.is_(None)))
        found = r.c.id_number_token.is_not(None)
        household = sa.func.coalesce(household, r.c.household_id_token)
        district = sa.case((found, r.c.district_code), else_=district)
        street = sa.case((found, r.c.street_code), else_=street)
    kind = x.value(src.assistance_kind, sa.String)
    project = _project(ctx, src, s, kind)
    cols = {
        "record_id": _record_id(prefix, key, token=spec.key_is_token(src, ctx.catalog)),
        "household_id_token": household,
        "id_number_token": s.c.id_number_token,
        SEALED: s.c[SEALED],
        "id_number_masked": s.c.id_number_masked,
        "department": x.value(src.department, sa.String),
        "assistance_kind": kind,
        "amount": sa.func.coalesce(x.value(src.amount, sa.Numeric(18, 4)), 0),
        "in_kind_description": _null(sa.Text)
        if in_kind is None
        else sa.func.substr(x.value(in_kind, sa.Text), 1, 200, type_=sa.Text),
        "service_kind": _service(ctx, x.value(src.service_kind, sa.Text), project),
        "project_id": project,
        "period_start": period[0],
        "period_end": period[1],
        "granted_on": x.value(src.granted_on, sa.Date),
        "disbursement_status": x.value(src.disbursement_status, sa.String),
        "source": sa.literal(src.source, sa.String),
        "warning_id": x.value(src.warning_id, sa.Text),
        "district_code": district,
        "street_code": street,
        # the record keeps its source row's digest as text (a department table stores its bytes: migration 0024)
        "_row_digest": token_hex(s.c._row_digest) if isinstance(s.c._row_digest.type, Digest) else s.c._row_digest,
        "_live": sa.case((x.live, 1), else_=0) if x.live is not None else sa.literal(1, sa.Integer),
    }
    q = sa.select(*(v.label(k) for k, v in cols.items())).select_from(frm)
    return q.where(where) if where is not None else q


def assistance_table(catalog: Any) -> sa.Table:
    """platform_assistance_record: the happiness list's table, as its contract defines it."""
    return dataset_table(catalog[ASSISTANCE_CONTRACT], sa.MetaData())


def _write(
    conn: sa.Connection, t: sa.Table, select: sa.Select[Any], *, batch_id: str, now: datetime
) -> tuple[int, int]:
    """Update the records whose values changed, insert the new live ones: (inserted, updated)."""
    src = select.subquery("src")
    compared = [c for c in RECORD_COLUMNS if c != "record_id"]
    changed = sa.or_(*(t.c[c].is_distinct_from(src.c[c]) for c in compared))
    stamp = {"updated_at": now, "_batch_id": batch_id, "_row_digest": src.c._row_digest, "_retired_batch": None}
    updated = conn.execute(
        sa.update(t).where(t.c.record_id == src.c.record_id, changed).values({c: src.c[c] for c in compared} | stamp)
    ).rowcount
    names = [*RECORD_COLUMNS, "updated_at", "_batch_id", "_row_digest"]
    new = sa.select(
        *(src.c[c] for c in RECORD_COLUMNS),
        sa.literal(now, sa.DateTime),
        sa.literal(batch_id, sa.String),
        src.c._row_digest,
    ).where(src.c._live == 1, ~sa.exists().where(t.c.record_id == src.c.record_id))
    # rowcount of an INSERT is kept only when asked for (SQLAlchemy guarantees it for UPDATE and DELETE).
    insert = sa.insert(t).from_select(names, new).execution_options(preserve_rowcount=True)
    inserted = conn.execute(insert).rowcount
    return inserted, updated


def _projects(directory: Path, catalog: Any) -> list[plist.Project]:
    """The project list beside the sources' folder (rules/projects.yaml), checked; none when the folder has none."""
    from lidm.monitor.rules import load_rules

    path = plist.projects_path(directory.parent)
    if not path.exists():
        return []
    rules = load_rules(directory.parent, catalog=catalog)
    names = [p.stem for p in directory.glob("*.yaml")]
    return plist.load_projects(path, catalog=catalog, rules=rules, sources=names)


def build_assistance_records(
    engine: sa.Engine, catalog: Any, *, now: datetime, directory: Path | None = None
) -> dict[str, int]:
    """Bring the happiness list up to date with the feeds and the applied dispositions, in one transaction.

    The sources are the declarations of ``directory`` (rules/assistance/ by default); one whose feed the city
    does not have is left out. Returns counts only: ``inserted``, ``updated`` and ``records`` (rows in the list
    afterwards), and per source feed (``platform.disposition`` for the dispositions) how many of its records were
    inserted or updated. A rebuild with nothing changed writes nothing and returns zeros but for ``records``.
    """
    sources = spec.load_sources(directory, catalog)
    t = assistance_table(catalog)
    ctx = _Ctx(catalog, now, sa.MetaData(), _projects(directory or spec.assistance_dir(), catalog))
    batch_id = str(uuid.uuid4())
    counts: dict[str, int] = {"inserted": 0, "updated": 0}
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":  # SQLite has no md5(); long source keys need it for record ids
            conn.connection.driver_connection.create_function("lidm_md5", 1, _sqlite_md5, deterministic=True)
        elif conn.dialect.name == "postgresql":
            # The monitor and the feedback DAGs both rebuild: one waits for the other instead of both inserting
            # the same new records and one failing on the key (SQLite serialises writers by itself).
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": BUILD_LOCK})
        for source in sources:
            inserted, updated = _write(conn, t, _select(ctx, source), batch_id=batch_id, now=now)
            counts["inserted"] += inserted
            counts["updated"] += updated
            counts[source.feed] = counts.get(source.feed, 0) + inserted + updated
        counts["records"] = conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
    return counts
