"""Closure and overdue notices: the department holding a warning is told when it closes or goes overdue.

Without them a department learned that a warning had closed only when its answer was refused. A warning that
was pushed and then closed (its condition went away, a case referred to county coordination 一事一议 included)
or went overdue gets one notice through the department's channel, in the next push: warning_id, the new status,
when, and why (a reason code and its Chinese wording, with the reason as the monitor recorded it). A warning
pushed when it was already overdue carries that status in its row and gets no overdue notice; one that closes
before it was ever pushed gets none (the department never had it).

A notice is recorded once sent, per warning, as a ``lidm_warning_event`` of status ``notice:closed`` or
``notice:overdue`` (actor ``push <push_id>``) in the push's central transaction, after the file or the
department's commit: a crash in between sends it again at the next push (at-least-once, like the warnings).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa

from lidm.central.schema import dataset_table, warning_event, warning_state
from lidm.contracts.load import ContractCatalog
from lidm.contracts.model import GrantLevel
from lidm.monitor.engine import Part
from lidm.monitor.lifecycle import WARNING_CONTRACT, warning_table
from lidm.monitor.readable import Readable, as_date, readable_csv

NOTICE_STATUSES = ("closed", "overdue")
EVENT_PREFIX = "notice:"  # lidm_warning_event.status of a notice sent: notice:closed | notice:overdue
# The machine notice file's columns (header = these names).
NOTICE_COLUMNS = ("warning_id", "status", "changed_at", "reason_code", "reason_zh", "reason", "referred")
# What each reason code says, and what the department should do. {feed}: the feed's Chinese name.
REASONS = {
    "left_subject": "对象已不在{feed}的监测范围内（退出名单、状态变更或记录撤销）",
    "now_found": "已在{feed}中查到（如救助或待遇已落实）",
    "no_longer_found": "已不再在{feed}中查到",
    "condition_gone": "预警条件已不再满足",
    "closed": "预警已关闭",
    "past_due": "已超过办理时限，尚未收到处置结果",
}
ACTIONS = {
    "closed": "无需再处置，平台不再接收该预警的处置结果；可归档。",
    "referred": "该预警已提交县级协调（一事一议），条件消失后已关闭，无需再报送最终结果。",
    "overdue": "请尽快处置，并按答复表报送处置结果。",
}
_PART_CODES = (("subject", "left_subject"), ("absent", "now_found"), ("match", "no_longer_found"))


@dataclass(frozen=True)
class Notice:
    """One warning's change the department is told of; codes and rule text only, no personal value."""

    warning_id: str
    status: str  # closed | overdue
    at: datetime
    reason_code: str
    reason_zh: str
    reason: str  # as the monitor recorded it (English)
    referred: bool
    summary: str | None
    due_date: date | None

    @property
    def event(self) -> str:
        return EVENT_PREFIX + self.status


def _part_patterns() -> list[tuple[str, re.Pattern[str]]]:
    """The monitor's wording of each kind of condition (engine.Part.describe), as patterns naming the feed."""
    out = []
    for kind, code in _PART_CODES:
        before, _, after = Part(kind, "\x00", sa.true()).describe(False).partition("\x00")
        out.append((code, re.compile(re.escape(before) + "(?P<feed>.+?)" + re.escape(after) + "$")))
    return out


def reason_of(status: str, recorded: str | None, catalog: ContractCatalog) -> tuple[str, str]:
    """The reason code and its Chinese wording of a status change, from what the monitor recorded."""
    if status == "overdue":
        return "past_due", REASONS["past_due"]
    text = recorded or ""
    for code, pattern in _part_patterns():
        found = pattern.search(text)
        if found:
            feeds = found["feed"].split(" or ")
            names = "或".join(catalog[f].title if f in catalog else f for f in feeds)
            return code, REASONS[code].format(feed=names)
    if text.startswith("condition no longer met"):
        return "condition_gone", REASONS["condition_gone"]
    return "closed", REASONS["closed"]


def due_notices(engine: sa.Engine, catalog: ContractCatalog, department: str) -> list[Notice]:
    """Notices the department has not been sent: its pushed warnings now closed, or overdue since their push."""
    w, ws, ev = warning_table(catalog), warning_state, warning_event
    sent = sa.exists().where(
        ev.c.warning_id == w.c.warning_id, ev.c.status == sa.literal(EVENT_PREFIX, sa.String) + w.c.status
    )
    query = (
        sa.select(
            w.c.warning_id,
            w.c.status,
            w.c.summary,
            w.c.due_date,
            ws.c.closed_at,
            ws.c.overdue_at,
            ws.c.close_reason,
        )
        .join(ws, ws.c.warning_id == w.c.warning_id)
        .where(
            w.c.target_consumer == department,
            ws.c.pushed_at.is_not(None),
            sa.or_(w.c.status == "closed", sa.and_(w.c.status == "overdue", ws.c.overdue_at >= ws.c.pushed_at)),
            ~sent,
        )
        .order_by(w.c.warning_id)
    )
    with engine.connect() as conn:
        rows = list(conn.execute(query))
        referred = _referred(conn, catalog, [r.warning_id for r in rows if r.status == "closed"])
    out = []
    for r in rows:
        code, zh = reason_of(r.status, r.close_reason, catalog)
        out.append(
            Notice(
                r.warning_id,
                r.status,
                r.closed_at if r.status == "closed" else r.overdue_at,
                code,
                zh,
                r.close_reason or ("past its due date" if r.status == "overdue" else ""),
                r.warning_id in referred,
                r.summary,
                as_date(r.due_date),
            )
        )
    return out


def _referred(conn: sa.Connection, catalog: ContractCatalog, ids: list[str]) -> set[str]:
    """Warnings the department had referred to county coordination (referred, or case_by_case: 一事一议)."""
    if not ids or "platform.disposition" not in catalog:
        return set()
    d = dataset_table(catalog["platform.disposition"], sa.MetaData())
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        found |= set(
            conn.execute(
                sa.select(d.c.warning_id).where(
                    d.c.warning_id.in_(ids[start : start + 500]),
                    d.c.outcome.in_(("referred", "case_by_case")),  # both wait for the county's 一事一议
                    d.c._retired_batch.is_(None),
                )
            ).scalars()
        )
    return found


def notice_files(
    notices: Sequence[Notice], catalog: ContractCatalog, today: date, granted: Sequence[str]
) -> tuple[bytes, bytes]:
    """The notice file for systems (NOTICE_COLUMNS, codes) and the one for people (Chinese headers and labels,
    what to do, the warning's summary and due date where the grant shows them)."""
    machine = [[n.warning_id, n.status, n.at, n.reason_code, n.reason_zh, n.reason, n.referred] for n in notices]
    readable = Readable(catalog[WARNING_CONTRACT], today, catalog.consumers)
    headers = [readable.header("warning_id"), readable.header("status"), "变更时间", "原因", "处理建议"]
    context = [name for name in ("summary", "due_date") if name in granted]
    headers += [readable.header(name) for name in context] + ["原因代码"]
    rows = []
    for n in notices:
        action = ACTIONS["referred" if n.referred else n.status]
        row = [n.warning_id, readable.label("status", n.status), n.at.strftime("%Y-%m-%d %H:%M"), n.reason_zh, action]
        field = readable.contract.field
        row += [
            readable.value(field(name), GrantLevel.CLEAR, n.summary if name == "summary" else n.due_date)
            for name in context
        ]
        rows.append([*row, n.reason_code])
    return readable_csv(NOTICE_COLUMNS, machine), readable_csv(headers, rows)


def record_sent(
    conn: sa.Connection, notices: Sequence[Notice], *, push_id: str, department: str, channel: str, at: datetime
) -> None:
    """Record each notice as sent: the event that keeps it from being sent again."""
    if notices:
        conn.execute(
            sa.insert(warning_event),
            [
                {
                    "warning_id": n.warning_id,
                    "status": n.event,
                    "at": at,
                    "actor": f"push {push_id}",
                    "detail": f"{n.reason_code}: told {department} via {channel}",
                }
                for n in notices
            ],
        )
