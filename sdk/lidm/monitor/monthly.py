"""The figures of the monthly statistical tables (民政统计月报): the roster by category and urban/rural, who came and
who left in the month, assistance money by programme, and how departments handled their warnings.

Every figure is a GROUP BY in the central database; this module only counts and sums, never reads a personal
value. A household is counted once, under its representative member (the head, 户主, when the head is among the
rows counted, else the member with the smallest id-number token), so household counts add up across categories,
urban/rural and districts. The workbook's layout is lidm.monitor.monthly_sheets; its definitions (说明) are
``DEFINITIONS`` here, next to the queries they describe.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from lidm.central.schema import batch, dataset_table, warning_state
from lidm.errors import LidmError
from lidm.monitor.happiness import assistance_table
from lidm.monitor.lifecycle import warning_table

ROSTER_CONTRACT = "civil_affairs.low_income_roster"
UNKNOWN = ""  # urban_rural, exit reason or district left empty: 未标注 / 未填写 / 其他, counted, never dropped
URBAN_RURAL = (("urban", "城镇"), ("rural", "农村"), (UNKNOWN, "未标注"))


class MonthError(LidmError):
    """--month is not a month like 2026-11."""


@dataclass(frozen=True)
class Month:
    """A calendar month: its first and last day and the half-open timestamp range [start, next month)."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        """'2026-11' (or 2026/11, 202611) as a month."""
        m = re.fullmatch(r"\s*(\d{4})[-/]?(\d{1,2})\s*", text or "")
        if not m or not 1 <= int(m.group(2)) <= 12:
            raise MonthError(f"--month {text!r} is not a month like 2026-11")
        return cls(int(m.group(1)), int(m.group(2)))

    @classmethod
    def of(cls, day: date) -> Month:
        return cls(day.year, day.month)

    @property
    def first(self) -> date:
        return date(self.year, self.month, 1)

    @property
    def last(self) -> date:
        return date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1)

    @property
    def end(self) -> datetime:
        """The first instant of the next month (timestamps are naive city wall-clock time)."""
        return datetime.combine(self.last + timedelta(days=1), datetime.min.time())

    @property
    def label(self) -> str:
        return f"{self.year}年{self.month}月"

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass
class Count:
    """Households and persons of one cell."""

    households: int = 0
    persons: int = 0

    def add(self, other: Count) -> None:
        self.households += other.households
        self.persons += other.persons


@dataclass
class Handling:
    """How one department handled its warnings in one district in the month (see DEFINITIONS)."""

    pushed: int = 0
    acknowledged: int = 0
    due: int = 0
    on_time: int = 0
    overdue: int = 0

    def add(self, other: Handling) -> None:
        for name in ("pushed", "acknowledged", "due", "on_time", "overdue"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def acknowledged_rate(self) -> float | None:
        return self.acknowledged / self.pushed if self.pushed else None

    @property
    def on_time_rate(self) -> float | None:
        return self.on_time / self.due if self.due else None

    @property
    def overdue_rate(self) -> float | None:
        return self.overdue / self.due if self.due else None


@dataclass
class MonthlyFigures:
    """Everything the monthly workbook shows, keyed by codes; names are added by the layout."""

    month: Month
    roster: dict[tuple[str, str, str], Count] = field(default_factory=dict)  # (district, urban_rural, category)
    new: dict[tuple[str, str], Count] = field(default_factory=dict)  # (district, category)
    exited: dict[tuple[str, str, str], Count] = field(default_factory=dict)  # (district, category, exit_reason)
    money: dict[tuple[str, str, str], tuple[int, float]] = field(default_factory=dict)  # (district, dept, kind)
    handling: dict[tuple[str, str], Handling] = field(default_factory=dict)  # (department, district)
    roster_loaded_at: datetime | None = None  # when the roster last loaded: the data's "as of"


def _people(conn: sa.Connection, r: sa.Table, where: Any, *dims: sa.ColumnElement[Any]) -> dict[tuple, Count]:
    """Persons and households (by their representative member) of the roster rows ``where``, per ``dims``."""
    head_first = sa.case((r.c.relation_to_head == "head", 0), else_=1)
    rank = sa.func.row_number().over(partition_by=r.c.household_id_token, order_by=(head_first, r.c.id_number_token))
    rows = sa.select(*(d.label(f"d{i}") for i, d in enumerate(dims)), rank.label("rn")).where(where).subquery()
    keys = [rows.c[f"d{i}"] for i in range(len(dims))]
    query = sa.select(*keys, sa.func.count(), sa.func.sum(sa.case((rows.c.rn == 1, 1), else_=0))).group_by(*keys)
    return {tuple(_code(v) for v in row[:-2]): Count(int(row[-1] or 0), int(row[-2])) for row in conn.execute(query)}


def _code(value: Any) -> str:
    return UNKNOWN if value is None else str(value)


def roster_figures(conn: sa.Connection, catalog: Any, month: Month, figures: MonthlyFigures) -> None:
    """On the roster at the month's end; entered (认定) and left (终止) within it."""
    r = dataset_table(catalog[ROSTER_CONTRACT], sa.MetaData())
    if not sa.inspect(conn).has_table(r.name):
        return
    live = r.c._retired_batch.is_(None)
    urban_rural = r.c.urban_rural if "urban_rural" in r.c else sa.null()
    # Still on the roster after the month's last day: no end date (unless terminated without one), or a later one.
    stays = sa.or_(
        sa.and_(r.c.termination_date.is_(None), r.c.status != "terminated"), r.c.termination_date > month.last
    )
    on_roster = sa.and_(live, r.c.approval_date <= month.last, stays)
    figures.roster = _people(conn, r, on_roster, r.c.district_code, urban_rural, r.c.category)
    entered = sa.and_(live, r.c.approval_date.between(month.first, month.last))
    figures.new = _people(conn, r, entered, r.c.district_code, r.c.category)
    left = sa.and_(live, r.c.termination_date.between(month.first, month.last))
    figures.exited = _people(conn, r, left, r.c.district_code, r.c.category, r.c.exit_reason)
    figures.roster_loaded_at = conn.execute(
        sa.select(sa.func.max(batch.c.finished_at)).where(
            batch.c.contract_id == ROSTER_CONTRACT, batch.c.status == "loaded"
        )
    ).scalar()


def money_figures(conn: sa.Connection, catalog: Any, month: Month, figures: MonthlyFigures) -> None:
    """Records and yuan per district, department and kind, of the happiness list's records of the month."""
    a = assistance_table(catalog)
    if not sa.inspect(conn).has_table(a.name):
        return
    belongs = sa.func.coalesce(a.c.period_start, a.c.granted_on)
    rows = conn.execute(
        sa.select(a.c.district_code, a.c.department, a.c.assistance_kind, sa.func.count(), sa.func.sum(a.c.amount))
        .where(
            a.c._retired_batch.is_(None),
            a.c.disbursement_status != "revoked",
            belongs.between(month.first, month.last),
        )
        .group_by(a.c.district_code, a.c.department, a.c.assistance_kind)
    )
    figures.money = {(_code(d), dept, kind): (int(n), round(float(s or 0), 2)) for d, dept, kind, n, s in rows}


def handling_figures(conn: sa.Connection, catalog: Any, month: Month, figures: MonthlyFigures) -> None:
    """Pushed, acknowledged, due, disposed on time and overdue warnings per department and district."""
    w = warning_table(catalog)
    if not sa.inspect(conn).has_table(w.name):
        return
    s = warning_state
    pushed = sa.and_(s.c.pushed_at >= month.start, s.c.pushed_at < month.end)
    acknowledged = sa.and_(pushed, sa.or_(s.c.acknowledged_at.is_not(None), s.c.disposed_at.is_not(None)))
    # A warning whose condition went away before anyone had to act (closed, never disposed, never late) is not due.
    closed_unneeded = sa.and_(s.c.closed_at.is_not(None), s.c.disposed_at.is_(None), s.c.overdue_at.is_(None))
    due = sa.and_(s.c.pushed_at.is_not(None), w.c.due_date.between(month.first, month.last), sa.not_(closed_unneeded))
    # The wall-clock day it was disposed: 'YYYY-MM-DD' text in SQLite (as dates are kept there), a date in PostgreSQL.
    disposed_on = sa.func.date(s.c.disposed_at)
    due_day = w.c.due_date
    on_time = sa.and_(due, s.c.disposed_at.is_not(None), disposed_on <= due_day)
    late = sa.and_(
        due, sa.or_(s.c.overdue_at.is_not(None), sa.and_(s.c.disposed_at.is_not(None), disposed_on > due_day))
    )
    late = sa.and_(late, sa.not_(on_time))
    rows = conn.execute(
        sa.select(
            w.c.target_department,
            w.c.district_code,
            *(sa.func.count().filter(c) for c in (pushed, acknowledged, due, on_time, late)),
        )
        .select_from(w.join(s, s.c.warning_id == w.c.warning_id))
        .where(w.c._retired_batch.is_(None), sa.or_(pushed, due))
        .group_by(w.c.target_department, w.c.district_code)
    )
    figures.handling = {(dept, _code(d)): Handling(*(int(n or 0) for n in counts)) for dept, d, *counts in rows}


def monthly_figures(conn: sa.Connection, catalog: Any, month: Month) -> MonthlyFigures:
    """All the month's figures, read in one connection."""
    figures = MonthlyFigures(month)
    roster_figures(conn, catalog, month, figures)
    money_figures(conn, catalog, month, figures)
    handling_figures(conn, catalog, month, figures)
    return figures


# What each figure means (说明 sheet), in the order the sheets show them.
DEFINITIONS = (
    ("统计口径", "全部数字由低收入人口动态监测平台从中心库按月汇总生成，只含计数与金额，不含任何个人信息。"),
    (
        "在册户数、人数",
        "统计月份最后一天在册的低收入人口：认定日期不晚于月末，且终止日期为空或晚于月末（状态为“终止”而无终止日期的不计）。"
        "在保、暂停、渐退期内的对象均计入。",
    ),
    (
        "类别",
        "一人兼有多个类别（如低保且防止返贫监测）时，按名单的主类别（category，即按其发放救助的类别）计一次，不重复计数。",
    ),
    (
        "户数",
        "一户只计一次：按户主所在行（户主不在所计人员中时，按该户令牌最小的成员）归入其区县、城乡和类别，"
        "因此各类别、城镇农村、各区县户数相加等于合计。",
    ),
    ("城镇、农村、未标注", "按名单的城乡属性（urban_rural）；名单未填写城乡属性的对象计入“未标注”，不剔除。"),
    ("区县", "按名单、预警或救助记录的区县代码，名称取自 contracts/consumers.yaml；不在本市区划内或为空的计入“其他”。"),
    ("本月新增", "认定日期在统计月份内的名单成员（按其主类别）。"),
    ("本月退出", "终止日期在统计月份内的名单成员（含渐退期满），按退出原因分列；未填写退出原因的计入“未填写”。"),
    (
        "救助资金",
        "幸福清单（platform.assistance_record）中所属月份在统计月份内的记录：有救助期间的按期间起始日，一次性救助按发放日期；"
        "已撤销的不计。按实施部门×救助项目分列，单位：元。",
    ),
    ("本月推送", "推送时间在统计月份内的预警条数。"),
    ("签收率", "本月推送的预警中已签收（或已直接办结）的条数 ÷ 本月推送条数。"),
    (
        "本月到期（应办结）",
        "已推送、办理时限（due_date）在统计月份内的预警；条件消失自动关闭且从未逾期、未办结的不计（无须办理）。",
    ),
    ("按时办结率", "本月到期的预警中，办结日期（办结时间所在日）不晚于办理时限的条数 ÷ 本月到期条数。"),
    (
        "逾期率",
        "本月到期的预警中，已被监测标记为逾期，或办结日期晚于办理时限的条数 ÷ 本月到期条数。"
        "其余为时限未到、仍在办理中的预警。分母为 0 时显示“—”。",
    ),
)
