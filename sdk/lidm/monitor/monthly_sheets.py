"""The monthly statistical workbook (民政统计月报) laid out the way civil-affairs bureaus file their tables.

Five sheets: 低收入人口分类统计, 本月新增与退出, 救助资金, 预警处置 and 说明. Each table has a title row, a 表头 line
(填报单位, 统计月份, 单位), merged header cells, the 全市 合计 first and then one block per district by NAME in
division-code order; the district code sits only in hidden column A, for a machine reading the file. Counts and
yuan are numbers, rates are percent-formatted numbers; widths, frozen headers and print setup (A4 landscape, one
page wide, header rows repeated) are set so the sheets print and convert to PDF as they look.

openpyxl is imported inside the functions: nothing that only imports this module loads it.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from lidm.monitor.happiness import ASSISTANCE_CONTRACT
from lidm.monitor.lifecycle import WARNING_CONTRACT
from lidm.monitor.monthly import (
    DEFINITIONS,
    ROSTER_CONTRACT,
    UNKNOWN,
    URBAN_RURAL,
    Count,
    Handling,
    Month,
    MonthlyFigures,
    monthly_figures,
)
from lidm.standard_codes import LOW_INCOME_CATEGORY_SHORT

SHEETS = ("低收入人口分类统计", "本月新增与退出", "救助资金", "预警处置", "说明")
TOTAL, SUBTOTAL, OTHER = "全市合计", "小计", "其他"
NO_REASON = "未填写"
FONT = "宋体"
COUNT_FORMAT, MONEY_FORMAT, RATE_FORMAT = "#,##0", "#,##0.00", "0.0%"
_HEADER_FILL, _TOTAL_FILL = "D9E1F2", "F2F2F2"


@dataclass
class Names:
    """What a person reads in place of each code: district, category, department, programme, exit reason."""

    city: str
    districts: dict[str, str]  # code -> name, in division-code order
    categories: dict[str, str]
    departments: dict[str, str]
    kinds: dict[str, str]
    reasons: dict[str, str]

    @classmethod
    def of(cls, catalog: Any) -> Names:
        """Names from the contracts' enum labels and consumers.yaml (city, districts, department names)."""

        def enum(contract: str, name: str) -> dict[str, str]:
            if contract not in catalog:
                return {}
            f = catalog[contract].field(name)
            return {v: lab or v for v, lab in zip(f.enum or (), f.enum_labels or (), strict=False)}

        consumers = catalog.consumers
        departments = enum(WARNING_CONTRACT, "target_department")
        if consumers is not None:
            for cid, c in consumers.members.items():
                if c.kind in ("department", "county"):
                    departments[cid] = c.name.split(" / ")[0]
        short = {code: label for label, code in LOW_INCOME_CATEGORY_SHORT.items()}
        categories = {code: short.get(code, lab) for code, lab in enum(ROSTER_CONTRACT, "category").items()}
        return cls(
            city=consumers.city if consumers else "",
            districts=dict(sorted((consumers.districts if consumers else {}).items())),
            categories=categories,
            departments=departments,
            kinds=enum(ASSISTANCE_CONTRACT, "assistance_kind"),
            reasons=enum(ROSTER_CONTRACT, "exit_reason"),
        )

    def district_rows(self, seen: set[str]) -> list[tuple[str | None, str]]:
        """(code, name) of every district of the city, then 其他 when a figure names a code outside it."""
        rows: list[tuple[str | None, str]] = list(self.districts.items())
        if seen - set(self.districts):
            rows.append((OTHER, OTHER))
        return rows

    def place(self, code: str) -> str:
        """The row a district code is counted in: itself when the city has it, else 其他."""
        return code if code in self.districts else OTHER


class _Table:
    """One sheet being written: the styles and the cell helpers every table of the workbook shares."""

    def __init__(self, wb: Any, title: str, heading: str, unit: str, info: tuple[str, str], width: int) -> None:
        from openpyxl.styles import Alignment, Border, Font, PatternFill, Side

        self.ws = wb.create_sheet(title)
        self.width = width  # columns, the hidden code column A included
        self.font, self.bold = Font(name=FONT, size=10), Font(name=FONT, size=10, bold=True)
        thin = Side(style="thin", color="000000")
        self.border = Border(left=thin, right=thin, top=thin, bottom=thin)
        self.center = Alignment(horizontal="center", vertical="center", wrap_text=True)
        self.header_fill = PatternFill("solid", fgColor=_HEADER_FILL)
        self.total_fill = PatternFill("solid", fgColor=_TOTAL_FILL)
        ws = self.ws
        ws.merge_cells(start_row=1, start_column=2, end_row=1, end_column=width)
        ws.cell(1, 2, heading).font = Font(name=FONT, size=16, bold=True)
        ws.cell(1, 2).alignment = Alignment(horizontal="center", vertical="center")
        ws.row_dimensions[1].height = 30
        third = max((width - 1) // 3, 1)
        spans = ((2, 1 + third), (2 + third, 1 + 2 * third), (2 + 2 * third, width))
        texts = (f"填报单位：{info[0]}", f"统计月份：{info[1]}", f"单位：{unit}")
        aligns = ("left", "center", "right")
        for (a, b), text, how in zip(spans, texts, aligns, strict=True):
            if b > a:
                ws.merge_cells(start_row=2, start_column=a, end_row=2, end_column=b)
            cell = ws.cell(2, a, text)
            cell.font, cell.alignment = self.font, Alignment(horizontal=how, vertical="center")
        self.row = 3
        self.blocks: list[tuple[int, int]] = []  # rows of each merged block, kept on one printed page

    def header(self, cells: Sequence[tuple[int, int, int, int, str]], rows: int) -> None:
        """Header cells (row offset, column, row span, column span, text), merged, over ``rows`` rows."""
        ws = self.ws
        for r in range(self.row, self.row + rows):
            for c in range(1, self.width + 1):
                cell = ws.cell(r, c)
                cell.border, cell.fill, cell.font, cell.alignment = (
                    self.border,
                    self.header_fill,
                    self.bold,
                    self.center,
                )
        for dr, col, rs, cs, text in cells:
            top = self.row + dr
            if rs > 1 or cs > 1:
                ws.merge_cells(start_row=top, start_column=col, end_row=top + rs - 1, end_column=col + cs - 1)
            ws.cell(top, col, text)
        for r in range(self.row, self.row + rows):
            ws.row_dimensions[r].height = 30
        self.header_rows = (self.row, self.row + rows - 1)
        self.row += rows

    def line(self, code: str | None, labels: Sequence[str], values: Sequence[Any], formats: Sequence[str]) -> int:
        """One data row: the hidden code, the label cells, then numbers (a None is shown as —)."""
        ws, r = self.ws, self.row
        ws.cell(r, 1, code or "")
        total = any(lab in (TOTAL, SUBTOTAL) for lab in labels)
        for i, lab in enumerate(labels):
            cell = ws.cell(r, 2 + i, lab)
            cell.alignment = self.center
        for i, (value, fmt) in enumerate(zip(values, formats, strict=True)):
            cell = ws.cell(r, 2 + len(labels) + i, "—" if value is None else value)
            cell.number_format = fmt
            if value is None:
                cell.alignment = self.center
        for c in range(1, self.width + 1):
            cell = ws.cell(r, c)
            cell.border = self.border
            cell.font = self.bold if total else self.font
            if total:
                cell.fill = self.total_fill
        self.row += 1
        return r

    def merge_down(self, col: int, first: int, last: int) -> None:
        self.blocks.append((first, last))
        if last > first:
            self.ws.merge_cells(start_row=first, start_column=col, end_row=last, end_column=col)
        self.ws.cell(first, col).alignment = self.center

    def _page_breaks(self, widths: Sequence[float]) -> None:
        """Break pages between district blocks, never inside one (a merged name cut in two reads badly).

        The rows a page holds are estimated from LibreOffice's PDF of A4 landscape: 31 data rows on the first page
        (title and 表头 above) and 34 on the next at full size, more when fitting the width shrinks the sheet (a
        character of column width prints about 6.5 pt wide)."""
        from openpyxl.worksheet.pagebreak import Break

        scale = min(1.0, 784 / (sum(widths) * 6.5))  # A4 landscape less 0.4 in margins, in points
        room, used = int(31 / scale), 0
        for first, last in self.blocks:
            size = last - first + 1
            if used and used + size > room:
                self.ws.row_breaks.append(Break(id=first - 1))
                room, used = int(34 / scale), 0
            used += size

    def finish(self, widths: Sequence[float], freeze_cols: int) -> None:
        """Widths (hidden code column first), frozen header, and the print setup that makes the PDF right."""
        from openpyxl.utils import get_column_letter

        ws = self.ws
        for i, w in enumerate(widths, start=1):
            ws.column_dimensions[get_column_letter(i)].width = w
        ws.column_dimensions["A"].hidden = True
        self._page_breaks(widths[1:])
        ws.freeze_panes = ws.cell(self.header_rows[1] + 1, 2 + freeze_cols)
        ws.print_title_rows = f"{self.header_rows[0]}:{self.header_rows[1]}"
        ws.print_area = f"B1:{get_column_letter(self.width)}{self.row - 1}"
        ws.page_setup.orientation = "landscape"
        ws.page_setup.paperSize = ws.PAPERSIZE_A4
        ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.print_options.horizontalCentered = True
        ws.page_margins.left = ws.page_margins.right = 0.4
        ws.page_margins.top = ws.page_margins.bottom = 0.5
        ws.oddFooter.center.text = "第 &P 页，共 &N 页"


def _roster_sheet(wb: Any, f: MonthlyFigures, names: Names, info: tuple[str, str]) -> None:
    cats = list(names.categories)
    t = _Table(wb, SHEETS[0], f"{names.city}低收入人口分类统计表", "户、人", info, 5 + 2 * len(cats))
    head = [(0, 1, 2, 1, "区划代码"), (0, 2, 2, 1, "区县"), (0, 3, 2, 1, "城乡"), (0, 4, 1, 2, "合计")]
    for i, c in enumerate(cats):
        head.append((0, 6 + 2 * i, 1, 2, names.categories[c]))
    for i in range(len(cats) + 1):
        head += [(1, 4 + 2 * i, 1, 1, "户数"), (1, 5 + 2 * i, 1, 1, "人数")]
    t.header(head, 2)
    cells: dict[tuple[str | None, str], dict[str, Count]] = defaultdict(lambda: defaultdict(Count))
    for (d, ur, cat), n in f.roster.items():
        for district in (names.place(d), None):
            for part in (ur, SUBTOTAL):
                cells[district, part][cat].add(n)
    formats = [COUNT_FORMAT] * (2 * len(cats) + 2)
    for code, name in [(None, TOTAL), *names.district_rows({k[0] for k in f.roster})]:
        first = t.row
        for part, label in ((SUBTOTAL, SUBTOTAL), *URBAN_RURAL):
            row = cells.get((code, part), {})
            total = Count()
            for n in row.values():
                total.add(n)
            values = [total.households, total.persons]
            for c in cats:
                n = row.get(c, Count())
                values += [n.households, n.persons]
            t.line(code if code not in (None, OTHER) else "", [name, label], values, formats)
        t.merge_down(2, first, t.row - 1)
    t.finish([8, 12, 8, *([8] * (2 * len(cats) + 2))], 2)


def _flow_sheet(wb: Any, f: MonthlyFigures, names: Names, info: tuple[str, str]) -> None:
    reasons = [*names.reasons, UNKNOWN]
    t = _Table(wb, SHEETS[1], f"{names.city}低收入人口本月新增与退出情况表", "户、人", info, 7 + len(reasons))
    head = [(0, 1, 2, 1, "区划代码"), (0, 2, 2, 1, "区县"), (0, 3, 2, 1, "类别"), (0, 4, 1, 2, "本月新增")]
    head += [(0, 6, 1, 2, "本月退出"), (0, 8, 1, len(reasons), "其中：退出原因（人）")]
    head += [(1, 4, 1, 1, "户数"), (1, 5, 1, 1, "人数"), (1, 6, 1, 1, "户数"), (1, 7, 1, 1, "人数")]
    head += [(1, 8 + i, 1, 1, names.reasons.get(r, NO_REASON)) for i, r in enumerate(reasons)]
    t.header(head, 2)
    new: dict[tuple[str | None, str], Count] = defaultdict(Count)
    gone: dict[tuple[str | None, str], Count] = defaultdict(Count)
    why: dict[tuple[str | None, str, str], int] = defaultdict(int)
    for (d, cat), n in f.new.items():
        for district in (names.place(d), None):
            for c in (cat, SUBTOTAL):
                new[district, c].add(n)
    for (d, cat, reason), n in f.exited.items():
        for district in (names.place(d), None):
            for c in (cat, SUBTOTAL):
                gone[district, c].add(n)
                why[district, c, reason if reason in names.reasons else UNKNOWN] += n.persons
    formats = [COUNT_FORMAT] * (4 + len(reasons))
    seen = {k[0] for k in [*f.new, *f.exited]}
    for code, name in [(None, TOTAL), *names.district_rows(seen)]:
        first = t.row
        for c, label in ((SUBTOTAL, SUBTOTAL), *names.categories.items()):
            a, b = new.get((code, c), Count()), gone.get((code, c), Count())
            values = [a.households, a.persons, b.households, b.persons, *(why.get((code, c, r), 0) for r in reasons)]
            t.line(code if code not in (None, OTHER) else "", [name, label], values, formats)
        t.merge_down(2, first, t.row - 1)
    t.finish([8, 12, 14, 8, 8, 8, 8, *([10] * len(reasons))], 2)


def _money_sheet(wb: Any, f: MonthlyFigures, names: Names, info: tuple[str, str]) -> None:
    """Programmes down (department, then kind), districts across: a dozen programmes print legibly this way."""
    dept_order = {d: i for i, d in enumerate(names.departments)}
    kind_order = {k: i for i, k in enumerate(names.kinds)}
    programmes = sorted(
        {(dept, kind) for _, dept, kind in f.money},
        key=lambda p: (dept_order.get(p[0], len(dept_order)), p[0], kind_order.get(p[1], len(kind_order)), p[1]),
    )
    districts = names.district_rows({k[0] for k in f.money})
    t = _Table(wb, SHEETS[2], f"{names.city}低收入人口救助资金统计表", "笔、元", info, 5 + len(districts))
    head = [(0, 1, 2, 1, "项目代码"), (0, 2, 2, 1, "实施部门"), (0, 3, 2, 1, "救助项目"), (0, 4, 2, 1, "救助笔数")]
    head += [(0, 5, 1, 1 + len(districts), "救助金额")]
    head += [(1, 5, 1, 1, TOTAL), *((1, 6 + i, 1, 1, name) for i, (_, name) in enumerate(districts))]
    t.header(head, 2)
    records: dict[tuple[str, str] | str | None, int] = defaultdict(int)
    amounts: dict[tuple[tuple[str, str] | str | None, str | None], float] = defaultdict(float)
    for (d, dept, kind), (n, yuan) in f.money.items():
        for row in ((dept, kind), dept, None):
            records[row] += n
            for district in (names.place(d), None):
                amounts[row, district] += yuan
    formats = [COUNT_FORMAT, *([MONEY_FORMAT] * (1 + len(districts)))]

    def line(row: tuple[str, str] | str | None, code: str, labels: list[str]) -> None:
        values = [records.get(row, 0), *(round(amounts.get((row, d), 0.0), 2) for d in (None, *dict(districts)))]
        t.line(code, labels, values, formats)

    line(None, "", [TOTAL, ""])
    t.ws.merge_cells(start_row=t.row - 1, start_column=2, end_row=t.row - 1, end_column=3)
    for dept in dict.fromkeys(p[0] for p in programmes):
        first = t.row
        label = names.departments.get(dept, dept)
        for p in (p for p in programmes if p[0] == dept):
            line(p, f"{p[0]}/{p[1]}", [label, names.kinds.get(p[1], p[1])])
        if t.row - first > 1:
            line(dept, dept, [label, SUBTOTAL])
        t.merge_down(2, first, t.row - 1)
    t.finish([8, 16, 16, 9, 13, *([12] * len(districts))], 2)


def _handling_sheet(wb: Any, f: MonthlyFigures, names: Names, info: tuple[str, str]) -> None:
    t = _Table(wb, SHEETS[3], f"{names.city}低收入人口监测预警处置情况表", "条、%", info, 11)
    head = [(0, 1, 1, 1, "区划代码"), (0, 2, 1, 1, "部门"), (0, 3, 1, 1, "区县")]
    titles = ("本月推送", "已签收", "签收率", "本月到期应办结", "按时办结", "按时办结率", "逾期", "逾期率")
    head += [(0, 4 + i, 1, 1, text) for i, text in enumerate(titles)]
    t.header(head, 1)
    formats = [COUNT_FORMAT, COUNT_FORMAT, RATE_FORMAT] * 2 + [COUNT_FORMAT, RATE_FORMAT]

    def write(dept_label: str, cells: dict[tuple[str, str], Handling], all_rows: bool) -> None:
        per: dict[str | None, Handling] = defaultdict(Handling)
        for (_, d), h in cells.items():
            per[names.place(d)].add(h)
            per[None].add(h)
        first = t.row
        for code, name in [(None, SUBTOTAL), *names.district_rows({d for _, d in cells})]:
            if code not in per and not all_rows:
                continue
            h = per.get(code, Handling())
            row = [h.pushed, h.acknowledged, h.acknowledged_rate, h.due, h.on_time, h.on_time_rate]
            t.line(
                code if code not in (None, OTHER) else "",
                [dept_label, name],
                [*row, h.overdue, h.overdue_rate],
                formats,
            )
        t.merge_down(2, first, t.row - 1)

    order = list(names.departments)
    write("全部部门", f.handling, True)
    for dept in sorted({d for d, _ in f.handling}, key=lambda d: (order.index(d) if d in order else len(order), d)):
        write(names.departments.get(dept, dept), {k: v for k, v in f.handling.items() if k[0] == dept}, False)
    t.finish([8, 14, 12, 10, 10, 10, 12, 10, 10, 10, 10], 2)


def _notes_sheet(wb: Any, f: MonthlyFigures, names: Names, info: tuple[str, str], meta: dict[str, str]) -> None:
    from openpyxl.styles import Alignment, Font

    ws = wb.create_sheet(SHEETS[4])
    ws.cell(1, 1, f"{names.city}低收入人口统计月报 说明").font = Font(name=FONT, size=14, bold=True)
    rows = [("填报单位", info[0]), ("统计月份", info[1]), *meta.items(), *DEFINITIONS]
    for i, (k, v) in enumerate(rows, start=3):
        ws.cell(i, 1, k).font = Font(name=FONT, size=10, bold=True)
        ws.cell(i, 2, v).font = Font(name=FONT, size=10)
        for c in (1, 2):
            ws.cell(i, c).alignment = Alignment(vertical="top", wrap_text=True)
        # Neither Excel nor LibreOffice grows a row for wrapped text written by a library: about 70 Chinese
        # characters fit a line of column B.
        ws.row_dimensions[i].height = 15 * (1 + len(v) // 70)
    ws.column_dimensions["A"].width = 20
    ws.column_dimensions["B"].width = 110
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth, ws.page_setup.fitToHeight = 1, 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True


def write_workbook(f: MonthlyFigures, names: Names, out: Path, *, generated_at: datetime, version: str) -> Path:
    """The monthly workbook written atomically (a hidden part file renamed into place)."""
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    info = (f"{names.city}民政局", f.month.label)
    loaded = f"{f.roster_loaded_at:%Y-%m-%d %H:%M}" if f.roster_loaded_at else "名单尚未入库"
    meta = {
        "统计时点": f"{f.month.last:%Y-%m-%d}（月末）",
        "名单数据截至": f"低收入人口名单最近一次入库：{loaded}",
        "生成时间": f"{generated_at:%Y-%m-%d %H:%M}",
        "生成程序": f"lidm {version}（lidm report --format xlsx --month {f.month}）",
    }
    for sheet in (_roster_sheet, _flow_sheet, _money_sheet, _handling_sheet):
        sheet(wb, f, names, info)
    _notes_sheet(wb, f, names, info, meta)
    wb.properties.title = f"{names.city}低收入人口统计月报（{f.month.label}）"
    wb.properties.creator = f"lidm {version}"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(f".{out.name}.part")
    try:
        wb.save(part)
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)
    return out


def write_monthly(
    engine: Any, catalog: Any, month: Month, out: Path, *, now: datetime, tz: str = "Asia/Shanghai"
) -> Path:
    """Gather the month's figures in one read-only connection and write the workbook (times in the city's ``tz``)."""
    from lidm import __version__

    with engine.connect() as conn:
        figures = monthly_figures(conn, catalog, month)
    loaded = figures.roster_loaded_at
    if loaded is not None:  # the ledger keeps UTC (SQLite hands it back naive); people read the city's clock
        aware = loaded if loaded.tzinfo else loaded.replace(tzinfo=UTC)
        figures.roster_loaded_at = aware.astimezone(ZoneInfo(tz)).replace(tzinfo=None)
    return write_workbook(figures, Names.of(catalog), out, generated_at=now, version=__version__)


def monthly_report(settings: Any, month: Month | None = None, out: Path | None = None, *, rebuild: bool = True) -> Path:
    """The monthly workbook of a deployment: the happiness list brought up to date (unless told not to), then the
    month's figures (the current month in the city's time zone by default), written to ``out`` or
    ``<home>/reports/lidm-monthly-<YYYYMM>.xlsx``."""
    from lidm.central import db
    from lidm.contracts.load import load_catalog
    from lidm.monitor.assistance_spec import assistance_dir
    from lidm.monitor.happiness import build_assistance_records
    from lidm.monitor.lifecycle import city_now

    catalog = load_catalog(settings.contracts_dir)
    now = city_now(settings.timezone)
    month = month or Month.of(now.date())
    out = out or settings.home / "reports" / f"lidm-monthly-{month.year:04d}{month.month:02d}.xlsx"
    engine = db.connect_existing(settings)
    try:
        db.ensure_current(engine, settings)
        if rebuild:
            build_assistance_records(engine, catalog, now=now, directory=assistance_dir(settings.rules_dir))
        return write_monthly(engine, catalog, month, out, now=now, tz=settings.timezone)
    finally:
        engine.dispose()
