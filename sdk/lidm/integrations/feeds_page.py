"""The Feeds page: a small FastAPI app the Airflow plugin mounts at /lidm (and that runs without Airflow).

Server-rendered HTML with no script, so it shows the same in any browser and behind any proxy; it
refreshes itself every minute. Everything on it comes from `lidm.status`: counts, reasons, times and
contract versions, never a person's data. /api/feeds serves the rows of `lidm status --json`.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from lidm.config import Settings, get_settings
from lidm.errors import LidmError
from lidm.status import (
    STATE_LABEL,
    DistrictWarnings,
    FeedStatus,
    WarningStatus,
    district_warnings,
    duration,
    feed_row,
    feed_status,
    warning_row,
    warning_status,
)

if TYPE_CHECKING:
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

ORDER = {"failing": 0, "late": 1, "fresh": 2, "never": 3}  # what needs an operator comes first

_STYLE = """
body{font-family:"Noto Sans CJK SC","Noto Sans",system-ui,sans-serif;margin:24px;color:#1f2933;background:#f7f9fb}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.summary{margin:0 0 16px;color:#52606d} .summary b{color:#1f2933}
table{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px rgba(0,0,0,.08)}
th,td{padding:7px 10px;border-bottom:1px solid #e4e7eb;text-align:left;vertical-align:top;font-size:13px}
th{background:#eef2f6;font-weight:600} td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.late td,tr.failing td{background:#fff1f0} tr.never td{color:#7b8794}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.badge.fresh{background:#e3f9e5;color:#1f7a34} .badge.late,.badge.failing{background:#ffd8d6;color:#a61b1b}
.badge.never{background:#e4e7eb;color:#52606d}
.dim{color:#7b8794;font-size:12px} .overdue{color:#a61b1b;font-weight:600}
"""


def _ago(delta: timedelta | None) -> str:
    if delta is None:
        return "never"
    seconds = int(delta.total_seconds())
    if seconds < 90:
        return f"{seconds} s ago"
    if seconds < 5400:
        return f"{seconds // 60} min ago"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def _span(freshness: str | None) -> str:
    """P2D -> 2 days, PT6H -> 6 h: the contract's freshness as an operator reads it."""
    limit = duration(freshness)
    if limit is None:
        return "—"
    hours = int(limit.total_seconds() // 3600)
    return f"{hours // 24} days" if hours >= 48 and hours % 24 == 0 else f"{hours} h"


def _reasons(reasons: list[tuple[str, int]]) -> str:
    return ", ".join(f"{html.escape(r)} ×{n}" for r, n in reasons) or "—"


def _row(s: FeedStatus) -> str:
    e = html.escape
    last, good = s.last, s.last_good
    reasons = _reasons(s.top_reasons)
    if last is not None and last.status == "rejected":
        # The rejected delivery's own reason beside its own counts; the last load's apart, with its own.
        reasons = f'<b>rejected:</b> {e((last.reason or "")[:240])}<br><span class="dim">{e(last.source)}</span>'
        if s.rejected_since_load > 1:
            reasons += f"<br><b>{s.rejected_since_load:,} deliveries rejected since the last load</b>"
        if good is not None:
            reasons += (
                f'<br><span class="dim">last loaded: {e(good.source)}, {good.extracted:,} extracted, '
                f"{good.loaded:,} loaded, {good.quarantined:,} quarantined ({_reasons(good.top_reasons)})</span>"
            )
    version = e(s.contract_version)
    if s.last_version and s.last_version != s.contract_version:
        version += f' <span class="dim">(read under {e(s.last_version)})</span>'
    counts = (
        f'<td class="n">{s.extracted:,}</td><td class="n">{s.loaded:,}</td><td class="n">{s.quarantined:,}</td>'
        if last is not None
        else '<td class="n">—</td><td class="n">—</td><td class="n">—</td>'
    )
    if s.open_quarantine:
        reasons += f'<br><span class="dim">{s.open_quarantine:,} held, unresolved</span>'
    if s.deferred:
        reasons += f"<br><b>{s.deferred:,} dated after the source's clock, held back</b>"
    if s.reconciled == "ok":
        recon = f'<span class="badge fresh">ok</span><br><span class="dim">{s.reconciled_at:%m-%d %H:%M}</span>'
    elif s.reconciled:
        recon = (
            f'<span class="badge failing">mismatch</span><br>{e(s.reconcile_summary or "")}'
            f'<br><span class="dim">{s.reconciled_at:%m-%d %H:%M}</span>'
        )
    else:
        recon = '<span class="dim">—</span>'
    newest = f"<br>newest record {e(s.newest_record[:16])}" if s.newest_record else ""
    return (
        f'<tr class="{s.state}" data-feed="{e(s.feed)}">'
        f'<td><b>{e(s.feed)}</b><br><span class="dim">{e(s.title)}</span></td>'
        f"<td>{e(s.department)}</td>"
        f'<td><span class="badge {s.state}">{STATE_LABEL[s.state]}</span><br>'
        f'<span class="dim">{"loaded " + _ago(s.age) if s.age else "no data yet"}; expected within '
        f"{_span(s.freshness)}{newest}</span></td>"
        f'{counts}<td>{reasons}</td><td class="reconciled">{recon}</td><td>{version}</td>'
        f'<td class="dim">{e(s.source)}</td></tr>'
    )


def _district_table(districts: Sequence[DistrictWarnings]) -> str:
    """Open and overdue warnings per district, by name (the code stays in a data attribute for scripts)."""
    if not districts:
        return ""
    rows = "".join(
        f"<tr data-district='{html.escape(d.district_code)}'><td>{html.escape(d.district)}</td>"
        f"<td class='n'>{d.open:,}</td><td class='n{' overdue' if d.overdue else ''}'>{d.overdue:,}</td></tr>"
        for d in districts
    )
    head = "<tr><th>district</th><th>open</th><th>overdue</th></tr>"
    return f"<h2>Warnings by district</h2><table id='districts'>{head}{rows}</table>"


def render(
    feeds: list[FeedStatus],
    warnings: list[WarningStatus],
    now: datetime | None = None,
    districts: Sequence[DistrictWarnings] = (),
) -> str:
    """The whole page."""
    now = now or datetime.now(UTC)
    late = sum(1 for f in feeds if f.state in ("late", "failing") or f.reconciled == "mismatch")
    never = sum(1 for f in feeds if f.state == "never")
    warn_rows = "".join(
        f"<tr><td>{html.escape(w.department)}</td><td class='n'>{w.open:,}</td>"
        f"<td class='n{' overdue' if w.overdue else ''}'>{w.overdue:,}</td></tr>"
        for w in warnings
    )
    warn_table = (
        f"<table id='warnings'><tr><th>department</th><th>open</th><th>overdue</th></tr>{warn_rows}</table>"
        if warnings
        else "<p class='summary' id='warnings'>No open warnings.</p>"
    )
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta http-equiv="refresh" content="60">
<title>lidm · Feeds</title><style>{_STYLE}</style></head>
<body>
<h1>Feeds</h1>
<p class="summary"><b>{len(feeds)}</b> feeds · <b class="{"overdue" if late else ""}">{late}</b>
late, rejected or not reconciled · <b>{never}</b> without data · as of {now:%Y-%m-%d %H:%M} UTC</p>
<table id="feeds">
<tr><th>feed</th><th>department</th><th>freshness</th><th>extracted</th><th>loaded</th><th>quarantined</th>
<th>reasons (quarantine or rejection)</th><th>reconciled</th><th>contract</th><th>source</th></tr>
{"".join(_row(f) for f in sorted(feeds, key=lambda f: (ORDER[f.state], f.feed)))}
</table>
<h2>Warnings by department</h2>
{warn_table}
{_district_table(districts)}
</body></html>"""


def create_app(settings: Callable[[], Settings] = get_settings, dependencies: Sequence[Any] = ()) -> FastAPI:
    """The app the plugin mounts; `settings` is called per request, so configuration changes apply.

    `dependencies` (FastAPI `Depends(...)`) guard every route: the host authenticates the caller. Airflow does not
    do it for a plugin's app, so the plugin passes its auth manager's check; without one the app answers anyone.
    """
    from fastapi import FastAPI
    from fastapi.responses import HTMLResponse, JSONResponse

    app = FastAPI(title="lidm feeds", docs_url=None, redoc_url=None, dependencies=list(dependencies))

    @app.get("/feeds", response_class=HTMLResponse)
    def feeds_page() -> HTMLResponse:
        current = settings()
        try:
            page = render(feed_status(current), warning_status(current), districts=district_warnings(current))
            return HTMLResponse(page)
        except LidmError as exc:  # the operator sees why, not a bare 500
            body = f"<!doctype html><title>lidm · Feeds</title><h1>Feeds</h1><p>{html.escape(str(exc))}</p>"
            return HTMLResponse(body, status_code=503)

    @app.get("/api/feeds", response_model=None)
    def feeds_json() -> dict[str, Any] | JSONResponse:
        """The rows of `lidm status --json` (`lidm.status.feed_row`, `warning_row`): feeds, then warnings."""
        current = settings()
        try:
            return {
                "feeds": [feed_row(f) for f in feed_status(current)],
                "warnings": [warning_row(w) for w in warning_status(current)],
            }
        except LidmError as exc:
            return JSONResponse({"error": str(exc)}, status_code=503)

    return app
