"""Statistics of the monitoring loop: the happiness list, the needs list, warnings and dispositions, counted.

Every figure is one set-based query (GROUP BY in the database); the results are plain dataclasses and dicts of
counts and sums. A household is named by its household token (or the person's id-number token when the person
has no household) and shown with a masked id number: nothing here reads a name, a clear or encrypted id.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from lidm.central.schema import dataset_table, disposition_result, monitor_run, token_hex, warning_state
from lidm.monitor.happiness import assistance_table
from lidm.monitor.lifecycle import OPEN, warning_table

DISPOSITION = "platform.disposition"
# The dimensions warnings are counted by: a name for each, and its column in platform_warning.
WARNING_DIMENSIONS = {
    "rule": "rule_id",
    "department": "target_department",
    "district": "district_code",
    "category": "low_income_category",
    "hardship": "hardship_type",
    "urgency": "urgency",
}
NONE = ""  # the key of rows whose dimension is empty (e.g. a warning for someone not on the roster)


def chain_key(t: sa.Table) -> sa.ColumnElement[str]:
    """The assistance chain a row belongs to: its household (H:token), else the person (P:token)."""
    return sa.case(
        (t.c.household_id_token.is_not(None), sa.literal("H:", sa.String) + token_hex(t.c.household_id_token)),
        else_=sa.literal("P:", sa.String) + token_hex(t.c.id_number_token),
    )


def _money(value: Any) -> float:
    return round(float(value or 0), 2)


def _key(value: Any) -> str:
    return NONE if value is None else str(value)


# --------------------------------------------------------------------------- the happiness list


@dataclass(frozen=True)
class Assistance:
    """One link of a household's chain: what, from whom, when, how much."""

    department: str
    kind: str
    granted_on: date
    amount: float
    status: str
    source: str
    person: int | None  # which member of the household (1, 2, … in order of first record); None: no id token
    period_start: date | None = None
    period_end: date | None = None
    in_kind: str | None = None
    service_kind: str | None = None  # 服务类社会救助 ("物质+服务")
    project_id: str | None = None  # the programme of the project list (rules/projects.yaml)


@dataclass
class HouseholdChain:
    """A household's assistance chain (一户一条救助链): every record, and totals over those not revoked."""

    household: str
    district_code: str
    people: int  # distinct persons in the chain
    records: int
    departments: int
    amount: float
    chain: list[Assistance] = field(default_factory=list)


@dataclass(frozen=True)
class AssistanceTotal:
    """Records, households and money of one kind of assistance from one department (revoked ones apart)."""

    department: str
    kind: str
    records: int
    households: int
    amount: float
    revoked: int


def assistance_totals(conn: sa.Connection, catalog: Any) -> list[AssistanceTotal]:
    """Totals per department and kind, largest amount first."""
    t = assistance_table(catalog)
    live = t.c.disbursement_status != "revoked"
    rows = conn.execute(
        sa.select(
            t.c.department,
            t.c.assistance_kind,
            sa.func.count().filter(live).label("records"),
            sa.func.count(sa.distinct(sa.case((live, chain_key(t))))).label("households"),
            sa.func.sum(sa.case((live, t.c.amount), else_=0)).label("amount"),
            sa.func.count().filter(sa.not_(live)).label("revoked"),
        ).group_by(t.c.department, t.c.assistance_kind)
    ).all()
    totals = [
        AssistanceTotal(r.department, r.assistance_kind, r.records, r.households, _money(r.amount), r.revoked)
        for r in rows
    ]
    return sorted(totals, key=lambda a: (-a.amount, -a.records, a.department, a.kind))


@dataclass(frozen=True)
class ServiceTotal:
    """Services of one kind (服务类社会救助, "物质+服务"): records and households, revoked ones apart."""

    service_kind: str
    records: int
    households: int


def service_totals(conn: sa.Connection, catalog: Any) -> list[ServiceTotal]:
    """Records that gave a service, per service kind, most records first."""
    t = assistance_table(catalog)
    rows = conn.execute(
        sa.select(t.c.service_kind, sa.func.count(), sa.func.count(sa.distinct(chain_key(t))))
        .where(t.c.disbursement_status != "revoked", t.c.service_kind.is_not(None))
        .group_by(t.c.service_kind)
    ).all()
    return sorted((ServiceTotal(*r) for r in rows), key=lambda x: (-x.records, x.service_kind))


def happiness_list(
    conn: sa.Connection, catalog: Any, *, limit: int | None = 20, households: Iterable[str] | None = None
) -> list[HouseholdChain]:
    """Households with their assistance chains, most money first (or the named ``households``)."""
    t = assistance_table(catalog)
    key = chain_key(t).label("household")
    live = t.c.disbursement_status != "revoked"
    heads = (
        sa.select(
            key,
            sa.func.min(t.c.district_code).label("district_code"),
            sa.func.count().filter(live).label("records"),
            sa.func.count(sa.distinct(sa.case((live, t.c.department)))).label("departments"),
            sa.func.coalesce(sa.func.sum(sa.case((live, t.c.amount), else_=0)), 0).label("amount"),
        )
        .group_by(key)
        .order_by(sa.desc("amount"), sa.desc("records"), key)
    )
    if households is not None:
        heads = heads.where(chain_key(t).in_(list(households)))
    if limit is not None:
        heads = heads.limit(limit)
    chains = {
        r.household: HouseholdChain(r.household, r.district_code, 0, r.records, r.departments, _money(r.amount))
        for r in conn.execute(heads)
    }
    if not chains:
        return []
    links = conn.execute(
        sa.select(key, t)
        .where(chain_key(t).in_(list(chains)))
        .order_by(key, t.c.granted_on, t.c.department, t.c.assistance_kind, t.c.record_id)
    ).all()
    members: dict[str, dict[str, int]] = defaultdict(dict)  # household -> person token -> its number
    for r in links:
        chain = chains[r.household]
        person = None
        if r.id_number_token:
            person = members[r.household].setdefault(r.id_number_token, len(members[r.household]) + 1)
            chain.people = len(members[r.household])
        chain.chain.append(
            Assistance(
                r.department,
                r.assistance_kind,
                r.granted_on,
                _money(r.amount),
                r.disbursement_status,
                r.source,
                person,
                r.period_start,
                r.period_end,
                r.in_kind_description,
                r.service_kind,
                r.project_id,
            )
        )
    return list(chains.values())


# --------------------------------------------------------------------------- the needs list


@dataclass
class HouseholdNeeds:
    """A household's open warnings (需求清单): by hardship type, which departments must act, how late.

    ``names_masked`` shows who the warnings concern (the lowest and highest masked name, 王*, per hardship type and
    department) and ``people`` how many persons: enough to recognise the household, not a member list. A masked
    ID number would say nothing here: its masked form (4301**************) is the same for everyone, by design.
    """

    household: str
    district_code: str
    low_income_category: str | None
    names_masked: list[str]
    open_warnings: int
    overdue: int
    people: int = 0  # distinct persons the open warnings concern
    needs: dict[str, int] = field(default_factory=dict)  # hardship type -> open warnings
    departments: list[str] = field(default_factory=list)
    earliest_due: date | None = None


def needs_list(conn: sa.Connection, catalog: Any, *, limit: int | None = None) -> list[HouseholdNeeds]:
    """Households with open warnings, most open warnings (then most overdue) first."""
    w = warning_table(catalog)
    key = chain_key(w).label("household")
    rows = conn.execute(
        sa.select(
            key,
            w.c.hardship_type,
            w.c.target_department,
            sa.func.count().label("n"),
            sa.func.count().filter(w.c.status == "overdue").label("overdue"),
            sa.func.min(w.c.district_code).label("district_code"),
            sa.func.min(w.c.low_income_category).label("category"),
            sa.func.min(w.c.name_masked).label("masked_min"),
            sa.func.max(w.c.name_masked).label("masked_max"),
            sa.func.min(w.c.due_date).label("due"),
        )
        .where(w.c.status.in_(OPEN))
        .group_by(key, w.c.hardship_type, w.c.target_department)
    ).all()
    out: dict[str, HouseholdNeeds] = {}
    for r in rows:
        h = out.get(r.household)
        if h is None:
            h = out[r.household] = HouseholdNeeds(r.household, r.district_code, r.category, [], 0, 0)
        h.open_warnings += r.n
        h.overdue += r.overdue
        h.needs[r.hardship_type] = h.needs.get(r.hardship_type, 0) + r.n
        if r.target_department not in h.departments:
            h.departments.append(r.target_department)
        h.low_income_category = h.low_income_category or r.category
        if r.due is not None and (h.earliest_due is None or r.due < h.earliest_due):
            h.earliest_due = r.due
        for masked in (r.masked_min, r.masked_max):
            if masked and masked not in h.names_masked:
                h.names_masked.append(masked)
    people = sa.select(key, sa.func.count(sa.distinct(w.c.id_number_token))).where(w.c.status.in_(OPEN)).group_by(key)
    for household, n in conn.execute(people):
        if household in out:
            out[household].people = n
    for h in out.values():
        h.departments.sort()
        h.names_masked.sort()
    ranked = sorted(out.values(), key=lambda h: (-h.open_warnings, -h.overdue, h.household))
    return ranked[:limit] if limit is not None else ranked


@dataclass(frozen=True)
class NeedCount:
    warnings: int
    households: int


def needs_by_hardship(conn: sa.Connection, catalog: Any) -> dict[str, NeedCount]:
    """Open warnings and the households they concern, per hardship type."""
    w = warning_table(catalog)
    rows = conn.execute(
        sa.select(w.c.hardship_type, sa.func.count(), sa.func.count(sa.distinct(chain_key(w))))
        .where(w.c.status.in_(OPEN))
        .group_by(w.c.hardship_type)
    ).all()
    return {r[0]: NeedCount(r[1], r[2]) for r in sorted(rows, key=lambda r: -r[1])}


# --------------------------------------------------------------------------- warnings and dispositions


@dataclass
class WarningCounts:
    """Warnings by where they are: open (of which overdue), disposed, closed when the condition went away."""

    open: int = 0
    overdue: int = 0
    disposed: int = 0
    closed: int = 0

    @property
    def total(self) -> int:
        return self.open + self.disposed + self.closed


def warning_counts(conn: sa.Connection, catalog: Any, by: str) -> dict[str, WarningCounts]:
    """Warnings per value of one dimension (rule, department, district, category, hardship, urgency)."""
    if by not in WARNING_DIMENSIONS:
        raise ValueError(f"warnings are counted by one of {', '.join(WARNING_DIMENSIONS)}, not {by!r}")
    w = warning_table(catalog)
    col = w.c[WARNING_DIMENSIONS[by]]
    rows = conn.execute(sa.select(col, w.c.status, sa.func.count()).group_by(col, w.c.status)).all()
    out: dict[str, WarningCounts] = {}
    for value, status, n in rows:
        c = out.setdefault(_key(value), WarningCounts())
        if status in OPEN:
            c.open += n
            c.overdue += n if status == "overdue" else 0
        elif status == "disposed":
            c.disposed += n
        else:
            c.closed += n
    return dict(sorted(out.items(), key=lambda kv: (-kv[1].total, kv[0])))


@dataclass(frozen=True)
class OverdueCount:
    now: int  # overdue and still without a disposition
    ever: int  # went past their due date at some time (disposed late included)


def overdue_by_department(conn: sa.Connection, catalog: Any) -> dict[str, OverdueCount]:
    """Overdue warnings per department that must act: the follow-up list of digital supervision."""
    w = warning_table(catalog)
    ws = warning_state
    rows = conn.execute(
        sa.select(
            w.c.target_department,
            sa.func.count().filter(w.c.status == "overdue"),
            sa.func.count().filter(ws.c.overdue_at.is_not(None)),
        )
        .select_from(w.outerjoin(ws, ws.c.warning_id == w.c.warning_id))
        .group_by(w.c.target_department)
    ).all()
    counts = {r[0]: OverdueCount(r[1], r[2]) for r in rows if r[2] or r[1]}
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1].now, -kv[1].ever, kv[0])))


def disposition_outcomes(conn: sa.Connection, catalog: Any) -> dict[str, dict[str, int]]:
    """Applied dispositions per department and outcome (included, granted, not eligible, terminated, referred)."""
    d = dataset_table(catalog[DISPOSITION], sa.MetaData())
    applied = sa.exists().where(
        disposition_result.c.disposition_id == d.c.disposition_id, disposition_result.c.status == "applied"
    )
    rows = conn.execute(
        sa.select(d.c.department, d.c.outcome, sa.func.count())
        .where(d.c._retired_batch.is_(None), applied)
        .group_by(d.c.department, d.c.outcome)
    ).all()
    out: dict[str, dict[str, int]] = {}
    for dept, outcome, n in rows:
        out.setdefault(dept, {})[outcome] = n
    return dict(sorted(out.items(), key=lambda kv: (-sum(kv[1].values()), kv[0])))


@dataclass(frozen=True)
class RunCounts:
    """The latest finished monitoring run: per rule, how many matched, were raised, closed, are open."""

    run_id: str
    as_of: date
    rules: dict[str, dict[str, int]]


def latest_run(conn: sa.Connection) -> RunCounts | None:
    """Counts of the latest finished monitoring run; None before the first."""
    r = conn.execute(
        sa.select(monitor_run.c.run_id, monitor_run.c.as_of, monitor_run.c.counts)
        .where(monitor_run.c.finished_at.is_not(None), monitor_run.c.counts.is_not(None))
        .order_by(monitor_run.c.started_at.desc(), monitor_run.c.as_of.desc())
        .limit(1)
    ).first()
    if r is None:
        return None
    return RunCounts(r.run_id, r.as_of, json.loads(r.counts))


# --------------------------------------------------------------------------- one glance


@dataclass(frozen=True)
class Overview:
    """The headline figures of the report."""

    households_assisted: int
    assistance_records: int
    assistance_amount: float
    open_warnings: int
    overdue_warnings: int
    households_in_need: int
    dispositions_applied: int
    last_run: date | None


def overview(conn: sa.Connection, catalog: Any) -> Overview:
    """Headline figures: households helped and how much, warnings open and late, dispositions taken in."""
    t = assistance_table(catalog)
    w = warning_table(catalog)
    d = dataset_table(catalog[DISPOSITION], sa.MetaData())
    live = t.c.disbursement_status != "revoked"
    a = conn.execute(
        sa.select(
            sa.func.count(sa.distinct(chain_key(t))), sa.func.count(), sa.func.coalesce(sa.func.sum(t.c.amount), 0)
        ).where(live)
    ).one()
    open_ = w.c.status.in_(OPEN)
    o = conn.execute(
        sa.select(
            sa.func.count(),
            sa.func.count().filter(w.c.status == "overdue"),
            sa.func.count(sa.distinct(chain_key(w))),
        ).where(open_)
    ).one()
    applied = sa.exists().where(
        disposition_result.c.disposition_id == d.c.disposition_id, disposition_result.c.status == "applied"
    )
    n_disp = conn.execute(
        sa.select(sa.func.count()).select_from(d).where(d.c._retired_batch.is_(None), applied)
    ).scalar_one()
    run = latest_run(conn)
    return Overview(a[0], a[1], _money(a[2]), o[0], o[1], o[2], n_disp, run.as_of if run else None)


def as_plain(value: Any) -> Any:
    """Dataclasses, dicts and lists of them as JSON-ready values (for logs, XCom, tests)."""
    if hasattr(value, "__dataclass_fields__"):
        return {k: as_plain(getattr(value, k)) for k in value.__dataclass_fields__}
    if isinstance(value, dict):
        return {k: as_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_plain(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value
