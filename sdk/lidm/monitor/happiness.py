"""The happiness list (幸福清单): every assistance a household received, from every department, one row each.

`build_assistance_records` materialises ``platform_assistance_record`` from the feeds that record assistance and
from the dispositions that granted some, one set-based statement pair per source (UPDATE … FROM for records
whose values changed, INSERT … SELECT for new ones), all in one transaction. Record ids are derived from the
source's key, so a rebuild finds its own rows again: nothing changed means nothing written.

Decisions the contracts leave open, taken here once:

- Monthly allowances (the roster's dibao/tekun money, the two disability subsidies, children's basic living
  allowance, public-rental rent subsidies) have no payment rows in their feeds, only who receives how much
  each month. Each build writes one record per recipient *for the month of ``now``* (period = that month);
  run monthly or more often, the list accumulates one record per recipient per month. Past months are never
  touched again; the current month's record turns ``revoked`` if the recipient stops being paid (suspended,
  terminated, amount 0 or gone from the snapshot) before the month is over.
- Rows of other feeds map one to one. A source row withdrawn by its department (status revoked/cancelled,
  legal aid terminated, renovation cancelled) stays in the list as ``revoked``; it is never deleted.
- A person on the low-income roster is placed in the roster's household and district (their residence)
  even when the feed itself has no household (medical insurance, justice, health): one household, one chain.
- Dispositions count only when granted and applied (``lidm_disposition_result.status = 'applied'``); a
  correction to another outcome turns the record ``revoked``.
- The same assistance reported by a department's feed and by a disposition appears twice (there is no shared
  key to match them on); the record's ``source`` tells them apart.
"""

from __future__ import annotations

import calendar
import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from lidm.central.schema import dataset_table, disposition_result

ASSISTANCE_CONTRACT = "platform.assistance_record"
ROSTER = "civil_affairs.low_income_roster"
DISPOSITION = "platform.disposition"
WARNING = "platform.warning"
RECORD_ID_MAX = 40
BUILD_LOCK = 0x6C69646D_68617070  # "lidmhapp": the PostgreSQL advisory lock one build holds
# The contract columns a source fills; a record changes when any of them does.
RECORD_COLUMNS = (
    "record_id",
    "household_id_token",
    "id_number_token",
    "id_number_enc",
    "id_number_masked",
    "department",
    "assistance_kind",
    "amount",
    "in_kind_description",
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
    if token:
        return sa.literal(prefix, sa.String) + sa.func.substr(key, 1, room, type_=sa.String)
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


@dataclass(frozen=True)
class _Source:
    """One feed's mapping into the list: which contract it reads and how its rows become records."""

    name: str
    build: Callable[[_Ctx], sa.Select[Any]]


def _mapped(
    ctx: _Ctx,
    s: sa.FromClause,
    *,
    record_id: sa.ColumnElement[str],
    department: str | sa.ColumnElement[str],
    kind: str | sa.ColumnElement[str],
    amount: sa.ColumnElement[Any],
    granted_on: sa.ColumnElement[Any],
    status: str | sa.ColumnElement[str],
    where: sa.ColumnElement[bool] | None = None,
    live: sa.ColumnElement[bool] | None = None,
    in_kind: str | sa.ColumnElement[str] | None = None,
    period: tuple[sa.ColumnElement[Any] | None, sa.ColumnElement[Any] | None] = (None, None),
    source: str = "routine",
    warning_id: sa.ColumnElement[str] | None = None,
    on_roster: bool = True,
) -> sa.Select[Any]:
    """A SELECT of one source's rows shaped as records; ``live`` says which may be inserted (default: all)."""

    def lit(v: Any) -> sa.ColumnElement[Any]:
        return sa.literal(v, sa.String) if isinstance(v, str) else v

    frm: sa.FromClause = s
    household = s.c.household_id_token if "household_id_token" in s.c else _null(sa.String(64))
    district = s.c.district_code
    street = s.c.street_code if "street_code" in s.c else _null(sa.Text)
    r = ctx.roster
    if on_roster and r is not None:
        frm = s.outerjoin(r, sa.and_(r.c.id_number_token == s.c.id_number_token, r.c._retired_batch.is_(None)))
        found = r.c.id_number_token.is_not(None)
        household = sa.func.coalesce(household, r.c.household_id_token)
        district = sa.case((found, r.c.district_code), else_=district)
        street = sa.case((found, r.c.street_code), else_=street)
    cols = {
        "record_id": record_id,
        "household_id_token": household,
        "id_number_token": s.c.id_number_token,
        "id_number_enc": s.c.id_number_enc,
        "id_number_masked": s.c.id_number_masked,
        "department": lit(department),
        "assistance_kind": lit(kind),
        "amount": sa.func.coalesce(amount, 0),
        "in_kind_description": sa.func.substr(lit(in_kind), 1, 200, type_=sa.Text)
        if in_kind is not None
        else _null(sa.Text),
        "period_start": period[0] if period[0] is not None else _null(sa.Date),
        "period_end": period[1] if period[1] is not None else _null(sa.Date),
        "granted_on": granted_on,
        "disbursement_status": lit(status),
        "source": sa.literal(source, sa.String),
        "warning_id": warning_id if warning_id is not None else _null(sa.Text),
        "district_code": district,
        "street_code": street,
        "_row_digest": s.c._row_digest,
        "_live": sa.case((live, 1), else_=0) if live is not None else sa.literal(1, sa.Integer),
    }
    q = sa.select(*(v.label(k) for k, v in cols.items())).select_from(frm)
    return q.where(where) if where is not None else q


def _month_period(ctx: _Ctx) -> tuple[sa.ColumnElement[Any], sa.ColumnElement[Any]]:
    return ctx.d(ctx.month_start), ctx.d(ctx.month_end)


# --------------------------------------------------------------------------- the sources


def _roster(ctx: _Ctx) -> sa.Select[Any]:
    s = ctx.table(ROSTER)
    live = sa.and_(
        s.c._retired_batch.is_(None),
        s.c.status == "active",
        s.c.monthly_amount > 0,
        s.c.approval_date <= ctx.d(ctx.month_end),
        sa.or_(s.c.termination_date.is_(None), s.c.termination_date >= ctx.d(ctx.month_start)),
    )
    kind = sa.case(
        (s.c.category == "dibao", sa.literal("dibao_allowance")),
        (s.c.category == "tekun", sa.literal("tekun_support")),
        else_=sa.literal("other"),
    )
    return _mapped(
        ctx,
        s,
        record_id=_record_id(f"LB{ctx.month}-", s.c.id_number_token, token=True),
        department="civil_affairs",
        kind=kind,
        amount=s.c.monthly_amount,
        granted_on=_later(s.c.approval_date, ctx.d(ctx.month_start)),
        status=sa.case((live, sa.literal("approved")), else_=sa.literal("revoked")),
        period=_month_period(ctx),
        live=live,
        on_roster=False,
    )


def _monthly_subsidy(feed: str, prefix: str, kind: str) -> Callable[[_Ctx], sa.Select[Any]]:
    """The disability subsidies and children's allowance: active recipients are paid ``monthly_amount``."""

    def build(ctx: _Ctx) -> sa.Select[Any]:
        s = ctx.table(feed)
        start = s.c.start_date if "start_date" in s.c else s.c.approval_date
        live = sa.and_(
            s.c._retired_batch.is_(None),
            s.c.status == "active",
            s.c.monthly_amount > 0,
            start <= ctx.d(ctx.month_end),
        )
        status = sa.case((sa.not_(live), sa.literal("revoked")), else_=sa.literal("approved"))
        if "last_paid_month" in s.c:  # the feed says whether this month was paid already
            month = f"{ctx.today:%Y-%m}"
            status = sa.case(
                (sa.not_(live), sa.literal("revoked")),
                (s.c.last_paid_month >= month, sa.literal("paid")),
                else_=sa.literal("approved"),
            )
        return _mapped(
            ctx,
            s,
            record_id=_record_id(f"{prefix}{ctx.month}-", s.c.id_number_token, token=True),
            department="civil_affairs",
            kind=kind,
            amount=s.c.monthly_amount,
            granted_on=_later(start, ctx.d(ctx.month_start)),
            status=status,
            period=_month_period(ctx),
            live=live,
        )

    return build


def _withdrawn(column: sa.ColumnElement[str], *values: str) -> sa.ColumnElement[str]:
    """The source's status, with the values meaning 'withdrawn' mapped to revoked."""
    return sa.case((column.in_(values), sa.literal("revoked")), else_=column)


def _temporary(ctx: _Ctx) -> sa.Select[Any]:
    s = ctx.table("civil_affairs.temporary_assistance")
    return _mapped(
        ctx,
        s,
        record_id=_record_id("LS-", s.c.case_id),
        department="civil_affairs",
        kind="temporary_assistance",
        amount=s.c.amount,
        granted_on=sa.func.coalesce(s.c.payment_date, s.c.approval_date, s.c.application_date),
        status=_withdrawn(s.c.disbursement_status, "revoked"),
        in_kind=sa.case((s.c.in_kind_value > 0, sa.literal("实物救助 / in-kind goods")), else_=_null(sa.Text)),
        where=s.c._retired_batch.is_(None),
    )


def _education(ctx: _Ctx) -> sa.Select[Any]:
    s = ctx.table("education.education_assistance")
    first = sa.func.substr(s.c.academic_year, 1, 4, type_=sa.String)
    second = sa.func.substr(s.c.academic_year, 6, 4, type_=sa.String)
    # Autumn term Sep–Jan, spring term Feb–Jul, a full year (or no term) Sep–Aug.
    start = sa.case((s.c.term == "spring", second + "-02-01"), else_=first + "-09-01")
    end = sa.case(
        (s.c.term == "autumn", second + "-01-31"),
        (s.c.term == "spring", second + "-07-31"),
        else_=second + "-08-31",
    )
    return _mapped(
        ctx,
        s,
        record_id=_record_id("JY-", s.c.record_id),
        department="education",
        kind="education_assistance",
        amount=s.c.amount,
        granted_on=sa.func.coalesce(s.c.payment_date, s.c.approval_date),
        status=_withdrawn(s.c.disbursement_status, "revoked"),
        period=(_as_date(start), _as_date(end)),
        where=s.c._retired_batch.is_(None),
    )


def _medical(ctx: _Ctx) -> sa.Select[Any]:
    s = ctx.table("medical_insurance.medical_assistance")
    premium = s.c.medical_assistance_kind == "premium_subsidy"
    year = sa.cast(s.c.assistance_year, sa.String)
    return _mapped(
        ctx,
        s,
        record_id=_record_id("YB-", s.c.record_id),
        department="medical_insurance",
        kind=sa.case((premium, sa.literal("premium_subsidy")), else_=sa.literal("medical_assistance")),
        amount=s.c.amount,
        granted_on=s.c.assistance_date,
        status=_withdrawn(s.c.disbursement_status, "revoked"),
        # A premium subsidy covers its insurance year; other medical assistance is one settlement.
        period=(
            sa.case((premium, _as_date(year + "-01-01")), else_=_null(sa.Date)),
            sa.case((premium, _as_date(year + "-12-31")), else_=_null(sa.Date)),
        ),
        where=s.c._retired_batch.is_(None),
    )


def _disaster(ctx: _Ctx) -> sa.Select[Any]:
    s = ctx.table("emergency.disaster_relief")
    spans = s.c.relief_end_date > s.c.relief_start_date
    return _mapped(
        ctx,
        s,
        record_id=_record_id("ZH-", s.c.record_id),
        department="emergency",
        kind="disaster_relief",
        amount=s.c.amount,
        granted_on=s.c.relief_start_date,
        status=_withdrawn(s.c.status, "cancelled"),
        in_kind=sa.case((s.c.in_kind_value > 0, s.c.in_kind_items), else_=_null(sa.Text)),
        period=(
            sa.case((spans, s.c.relief_start_date), else_=_null(sa.Date)),
            sa.case((spans, s.c.relief_end_date), else_=_null(sa.Date)),
        ),
        where=s.c._retired_batch.is_(None),
    )


def _public_rental_allocation(ctx: _Ctx) -> sa.Select[Any]:
    s = ctx.table("housing.public_rental_housing")
    return _mapped(
        ctx,
        s,
        record_id=_record_id("GZ-", s.c.record_id),
        department="housing",
        kind="housing_assistance",
        amount=sa.literal(0, sa.Numeric(18, 4)),
        granted_on=s.c.start_date,
        status=sa.case((s.c.start_date > ctx.d(ctx.today), sa.literal("approved")), else_=sa.literal("paid")),
        in_kind="公租房实物配租 / public rental housing allocation",
        period=(s.c.start_date, s.c.end_date),
        where=sa.and_(s.c._retired_batch.is_(None), s.c.support_kind == "physical_allocation"),
    )


def _public_rental_subsidy(ctx: _Ctx) -> sa.Select[Any]:
    s = ctx.table("housing.public_rental_housing")
    live = sa.and_(
        s.c._retired_batch.is_(None),
        s.c.status == "active",
        s.c.monthly_subsidy > 0,
        s.c.start_date <= ctx.d(ctx.month_end),
        sa.or_(s.c.end_date.is_(None), s.c.end_date >= ctx.d(ctx.month_start)),
    )
    return _mapped(
        ctx,
        s,
        record_id=_record_id(f"GZ{ctx.month}-", s.c.record_id),
        department="housing",
        kind="housing_assistance",
        amount=s.c.monthly_subsidy,
        granted_on=_later(s.c.start_date, ctx.d(ctx.month_start)),
        status=sa.case((live, sa.literal("approved")), else_=sa.literal("revoked")),
        period=_month_period(ctx),
        live=live,
        where=s.c.support_kind == "rent_subsidy",
    )


def _renovation(ctx: _Ctx) -> sa.Select[Any]:
    s = ctx.table("housing.rural_house_renovation")
    return _mapped(
        ctx,
        s,
        record_id=_record_id("WF-", s.c.project_id),
        department="housing",
        kind="housing_assistance",
        amount=s.c.subsidy_amount,
        granted_on=s.c.approval_date,
        # The subsidy is paid once the renovation passes acceptance.
        status=sa.case(
            (s.c.acceptance_status == "cancelled", sa.literal("revoked")),
            (s.c.acceptance_status == "passed", sa.literal("paid")),
            else_=sa.literal("approved"),
        ),
        where=sa.and_(s.c._retired_batch.is_(None), s.c.approval_date.is_not(None)),
    )


def _legal_aid(ctx: _Ctx) -> sa.Select[Any]:
    feed = "justice.legal_aid"
    s = ctx.table(feed)
    return _mapped(
        ctx,
        s,
        record_id=_record_id("FY-", s.c.case_id),
        department="justice",
        kind="legal_aid",
        amount=sa.literal(0, sa.Numeric(18, 4)),
        granted_on=sa.func.coalesce(s.c.decision_date, s.c.application_date),
        status=sa.case(
            (s.c.case_status == "terminated", sa.literal("revoked")),
            (s.c.case_status == "closed", sa.literal("paid")),
            else_=sa.literal("approved"),
        ),
        in_kind=sa.literal("法律援助：", sa.String) + _label_case(ctx.catalog, feed, "aid_form", s.c.aid_form),
        # Received cases are not decided yet and refused ones were never granted.
        where=sa.and_(
            s.c._retired_batch.is_(None), s.c.case_status.in_(("granted", "assigned", "closed", "terminated"))
        ),
    )


def _welfare_post(ctx: _Ctx) -> sa.Select[Any]:
    s = ctx.table("hr_social_security.employment")
    return _mapped(
        ctx,
        s,
        record_id=_record_id("GY-", s.c.record_id),
        department="hr_social_security",
        kind="employment_assistance",
        amount=sa.literal(0, sa.Numeric(18, 4)),
        granted_on=s.c.start_date,
        status=sa.case((s.c.start_date > ctx.d(ctx.today), sa.literal("approved")), else_=sa.literal("paid")),
        in_kind="公益性岗位安置 / public-welfare post",
        period=(s.c.start_date, s.c.end_date),
        where=sa.and_(s.c._retired_batch.is_(None), s.c.employment_form == "public_welfare_post"),
    )


def _disease_fund(ctx: _Ctx) -> sa.Select[Any]:
    s = ctx.table("health.disease_emergency_fund")
    return _mapped(
        ctx,
        s,
        record_id=_record_id("JJ-", s.c.case_id),
        department="health",
        kind="medical_assistance",
        amount=s.c.fund_paid,
        granted_on=sa.func.coalesce(s.c.payment_date, s.c.approval_date, s.c.application_date),
        status=_withdrawn(s.c.disbursement_status, "revoked"),
        # An unidentified patient has no id number: no household chain to put the record in.
        where=sa.and_(s.c._retired_batch.is_(None), s.c.id_number_token.is_not(None)),
    )


def _dispositions(ctx: _Ctx) -> sa.Select[Any]:
    s = ctx.table(DISPOSITION)
    applied = sa.exists().where(
        disposition_result.c.disposition_id == s.c.disposition_id, disposition_result.c.status == "applied"
    )
    live = sa.and_(s.c._retired_batch.is_(None), s.c.outcome == "granted", applied)
    return _mapped(
        ctx,
        s,
        record_id=_record_id("YJ-", s.c.disposition_id),
        department=s.c.department,
        kind=sa.func.coalesce(s.c.assistance_kind, "other"),
        amount=s.c.amount,
        granted_on=sa.func.coalesce(s.c.granted_on, _as_date(s.c.disposed_at)),
        status=sa.case((live, sa.literal("approved")), else_=sa.literal("revoked")),
        source="warning",
        warning_id=s.c.warning_id,
        live=live,
    )


SOURCES: tuple[_Source, ...] = (
    _Source(ROSTER, _roster),
    _Source(
        "civil_affairs.hardship_disability_subsidy",
        _monthly_subsidy("civil_affairs.hardship_disability_subsidy", "CJ", "disability_subsidy"),
    ),
    _Source(
        "civil_affairs.severe_disability_care_subsidy",
        _monthly_subsidy("civil_affairs.severe_disability_care_subsidy", "HL", "disability_subsidy"),
    ),
    _Source("civil_affairs.children_in_need", _monthly_subsidy("civil_affairs.children_in_need", "ET", "other")),
    _Source("civil_affairs.temporary_assistance", _temporary),
    _Source("education.education_assistance", _education),
    _Source("medical_insurance.medical_assistance", _medical),
    _Source("emergency.disaster_relief", _disaster),
    _Source("housing.public_rental_housing", _public_rental_allocation),
    _Source("housing.public_rental_housing", _public_rental_subsidy),
    _Source("housing.rural_house_renovation", _renovation),
    _Source("justice.legal_aid", _legal_aid),
    _Source("hr_social_security.employment", _welfare_post),
    _Source("health.disease_emergency_fund", _disease_fund),
    _Source(DISPOSITION, _dispositions),
)


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


def build_assistance_records(engine: sa.Engine, catalog: Any, *, now: datetime) -> dict[str, int]:
    """Bring the happiness list up to date with the feeds and the applied dispositions, in one transaction.

    Returns counts only: ``inserted``, ``updated`` and ``records`` (rows in the list afterwards), and per source
    (feed id, or ``platform.disposition``) how many of its records were inserted or updated. A rebuild with
    nothing changed writes nothing and returns zeros but for ``records``.
    """
    t = assistance_table(catalog)
    ctx = _Ctx(catalog, now, sa.MetaData())
    batch_id = str(uuid.uuid4())
    counts: dict[str, int] = {"inserted": 0, "updated": 0}
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":  # SQLite has no md5(); long source keys need it for record ids
            conn.connection.driver_connection.create_function("lidm_md5", 1, _sqlite_md5, deterministic=True)
        elif conn.dialect.name == "postgresql":
            # The monitor and the feedback DAGs both rebuild: one waits for the other instead of both inserting
            # the same new records and one failing on the key (SQLite serialises writers by itself).
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": BUILD_LOCK})
        for source in SOURCES:
            if source.name not in catalog:  # a city without this feed
                continue
            inserted, updated = _write(conn, t, source.build(ctx), batch_id=batch_id, now=now)
            counts["inserted"] += inserted
            counts["updated"] += updated
            counts[source.name] = counts.get(source.name, 0) + inserted + updated
        counts["records"] = conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
    return counts
