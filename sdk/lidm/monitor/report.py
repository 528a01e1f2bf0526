"""The analyst's report: one self-contained HTML file (plotly.js inside) of the monitoring loop's figures.

What a civil-affairs analyst opens offline: warnings by rule, department, district and category; overdue
warnings; what departments answered; assistance totals; the needs list and a sample of the happiness list.
Charts and labels: lidm.monitor.charts. Only counts, sums, masked names (王*) and shortened household tokens reach
the file: the statistics never read a personal value.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from plotly.offline import get_plotlyjs

from lidm.monitor import page, stats
from lidm.monitor.charts import (
    Labels,
    chart,
    needs_chart,
    outcome_chart,
    overdue_chart,
    totals_chart,
    warnings_chart,
)
from lidm.monitor.happiness import build_assistance_records
from lidm.monitor.quality import DataQuality, data_quality, sharing_map
from lidm.monitor.scenarios import GROUP_LABELS, group_counts, in_group_order


@dataclass
class ReportData:
    """Everything the report shows, gathered in one read-only transaction."""

    overview: stats.Overview
    warnings: dict[str, dict[str, stats.WarningCounts]]
    overdue: dict[str, stats.OverdueCount]
    outcomes: dict[str, dict[str, int]]
    totals: list[stats.AssistanceTotal]
    needs_by_hardship: dict[str, stats.NeedCount]
    needs: list[stats.HouseholdNeeds]
    chains: list[stats.HouseholdChain]
    run: stats.RunCounts | None
    quality: dict[str, DataQuality] = field(default_factory=dict)
    services: list[stats.ServiceTotal] = field(default_factory=list)


def collect(
    conn: sa.Connection,
    catalog: Any,
    *,
    top: int = 20,
    sample: int = 10,
    sharing: dict[str, tuple[str, ...]] | None = None,
) -> ReportData:
    """The report's figures: counts per dimension, the ``top`` households in need, a ``sample`` of chains, and
    the sharing departments' data quality (``sharing``: rule id -> departments, quality.sharing_map)."""
    return ReportData(
        overview=stats.overview(conn, catalog),
        warnings={by: stats.warning_counts(conn, catalog, by) for by in ("rule", "department", "district", "category")},
        overdue=stats.overdue_by_department(conn, catalog),
        outcomes=stats.disposition_outcomes(conn, catalog),
        totals=stats.assistance_totals(conn, catalog),
        needs_by_hardship=stats.needs_by_hardship(conn, catalog),
        needs=stats.needs_list(conn, catalog, limit=top),
        chains=stats.happiness_list(conn, catalog, limit=sample),
        run=stats.latest_run(conn),
        quality=data_quality(conn, catalog, sharing or {}),
        services=stats.service_totals(conn, catalog),
    )


# --------------------------------------------------------------------------- charts


SECTIONS = (
    ("overview", "概览 / Overview"),
    ("groups", "三类预警 / Three kinds of warnings"),
    ("warnings", "预警分布 / Warnings"),
    ("overdue", "逾期预警 / Overdue warnings"),
    ("dispositions", "处置结果 / Disposition outcomes"),
    ("assistance", "救助汇总 / Assistance totals"),
    ("needs", "需求清单 / Needs list"),
    ("happiness", "幸福清单样本 / Happiness list sample"),
    ("quality", "比对数据质量（容错）/ Quality of the shared data"),
    ("rules", "规则计数 / Per-rule counts"),
)


def render(data: ReportData, labels: Labels, *, generated_at: datetime, groups: dict[str, str] | None = None) -> str:
    """The whole report as one HTML page with plotly.js embedded (opens offline); ``groups`` maps a rule to its group
    (needs_more_help, may_qualify, may_leave: Rule.group_of), kept apart as the seed's three duties."""
    groups = groups or {}
    o = data.overview
    title = dict(SECTIONS)
    cards = [
        ("受助户（人）/ households assisted", page.num(o.households_assisted)),
        ("救助记录 / assistance records", page.num(o.assistance_records)),
        ("救助金额（元）/ amount (yuan)", page.num(o.assistance_amount)),
        ("未办结预警 / open warnings", page.num(o.open_warnings)),
        ("已逾期 / overdue", page.num(o.overdue_warnings)),
        ("待帮扶户（人）/ households in need", page.num(o.households_in_need)),
        ("已采纳处置反馈 / dispositions applied", page.num(o.dispositions_applied)),
    ]
    overview = '<div class="cards">' + "".join(
        f'<div class="card"><div class="v">{v}</div><div class="k">{page.e(k)}</div></div>' for k, v in cards
    )
    overview += "</div>"
    w = data.warnings
    warnings = '<div class="grid">' + "".join(
        (
            chart(warnings_chart(w["rule"], "按规则 / by rule", labels.rule_short), "chart-warnings-rule"),
            chart(
                warnings_chart(w["department"], "按推送部门 / by department", lambda k: labels("department", k)),
                "chart-warnings-department",
            ),
            chart(
                warnings_chart(w["district"], "按区县 / by district", labels.district),
                "chart-warnings-district",
            ),
            chart(
                warnings_chart(
                    w["category"], "按低收入人口类别 / by low-income category", lambda k: labels("category", k)
                ),
                "chart-warnings-category",
            ),
        )
    )
    warnings += "</div>"
    totals_table = page.table(
        (
            "部门 / department",
            "救助项目 / kind",
            "记录 / records",
            "户（人）/ households",
            "金额（元）/ amount",
            "已撤销 / revoked",
        ),
        (
            (labels("department", t.department), labels("kind", t.kind), t.records, t.households, t.amount, t.revoked)
            for t in data.totals
        ),
        numeric=(2, 3, 4, 5),
    )
    needs_table = page.table(
        (
            "户（人）/ household",
            "对象（脱敏）/ persons (masked)",
            "区县 / district",
            "类别 / category",
            "困难类型 / needs",
            "须办理部门 / departments",
            "未办结 / open",
            "已逾期 / overdue",
            "最早时限 / earliest due",
        ),
        (
            (
                page.household(n.household),
                f"{'、'.join(n.names_masked)}（{n.people}人）",
                labels.district(n.district_code),
                labels("category", n.low_income_category),
                "；".join(f"{labels('hardship', h)} ×{c}" for h, c in n.needs.items()),
                "；".join(labels("department", d) for d in n.departments),
                n.open_warnings,
                n.overdue,
                n.earliest_due,
            )
            for n in data.needs
        ),
        numeric=(6, 7),
    )
    chain_rows = []
    for c in data.chains:
        for a in c.chain:
            period = f"{a.period_start or ''} ~ {a.period_end or ''}" if a.period_start or a.period_end else ""
            chain_rows.append(
                (
                    page.household(c.household),
                    f"#{a.person}" if a.person else "",
                    labels("department", a.department),
                    labels("kind", a.kind),
                    a.granted_on,
                    period,
                    a.amount,
                    "；".join(x for x in (a.in_kind, a.service_kind and labels("service", a.service_kind)) if x),
                    a.project_id,
                    labels("disbursement", a.status),
                    labels("source", a.source),
                )
            )
    chains_table = page.table(
        (
            "户（人）/ household",
            "成员 / person",
            "部门 / department",
            "救助项目 / kind",
            "发放日期 / granted",
            "期间 / period",
            "金额（元）/ amount",
            "实物或服务 / in kind or service",
            "项目清单 / project",
            "状态 / status",
            "来源 / source",
        ),
        chain_rows,
        numeric=(6,),
    )
    chain_heads = page.table(
        ("户（人）/ household", "区县 / district", "救助记录 / records", "部门数 / departments", "金额（元）/ amount"),
        (
            (page.household(c.household), labels.district(c.district_code), c.records, c.departments, c.amount)
            for c in data.chains
        ),
        numeric=(2, 3, 4),
    )
    group_table = page.table(
        (
            "类别 / group",
            "规则 / rules",
            "预警 / warnings",
            "未办结 / open",
            "已逾期 / overdue",
            "已处置 / disposed",
            "关闭 / closed",
        ),
        (
            (GROUP_LABELS.get(g, g), c.rules, c.total, c.open, c.overdue, c.disposed, c.closed)
            for g, c in group_counts(w["rule"], groups).items()
        ),
        numeric=(1, 2, 3, 4, 5, 6),
    )
    group_rules = page.table(
        ("类别 / group", "规则 / rule", "说明 / title", "预警 / warnings", "未办结 / open", "已处置 / disposed"),
        (
            (GROUP_LABELS.get(groups.get(rid, ""), "—"), rid, labels.rule(rid), c.total, c.open, c.disposed)
            for rid, c in in_group_order(w["rule"], groups)
        ),
        numeric=(3, 4, 5),
    )
    run = data.run
    rule_table = page.table(
        (
            "规则 / rule",
            "说明 / title",
            "比中 / matched",
            "新预警 / raised",
            "暂缓 / suppressed",
            "关闭 / closed",
            "未办结 / open",
        ),
        (
            (rid, labels.rule(rid), *(c.get(k, 0) for k in ("matched", "raised", "suppressed", "closed", "open")))
            for rid, c in (run.rules.items() if run else ())
        ),
        numeric=(2, 3, 4, 5, 6),
    )
    run_note = (
        f"最近一次比对：{run.as_of}（运行 {run.run_id[:8]}）/ latest monitoring run for {run.as_of}"
        if run
        else "尚无比对运行 / no monitoring run yet"
    )
    body = "".join(
        (
            page.section(
                "overview",
                title["overview"],
                "全市低收入人口救助与预警的总体情况：多少户得到救助、多少预警待办、多少已逾期。"
                " / The city at a glance: who was helped, how many warnings wait for a department, how many are late.",
                overview,
            ),
            page.section(
                "groups",
                title["groups"],
                "大数据比对的三个方向：在保对象是否需加强帮扶、未纳入的困难群众是否可能符合条件（主动发现，应救尽救）、"
                "在保对象是否可能不再符合条件（应退尽退）。 / The three ways cross-matching looks: people on the roster"
                " who need more help, people on no roster who may qualify, people on the roster who may no longer"
                " qualify.",
                group_table,
                group_rules,
            ),
            page.section(
                "warnings",
                title["warnings"],
                "大数据比对生成的预警落在哪些规则、部门、区县和人群：看压力集中在哪里。"
                " / Where the cross-matching warnings fall — by rule, department, district and category — to see where"
                " the load is.",
                warnings,
            ),
            page.section(
                "overdue",
                title["overdue"],
                "超过办理时限仍未反馈的预警，按须办理部门：督办的依据。"
                " / Warnings past their due date without a disposition, by the department that must act: what to"
                " follow up.",
                chart(overdue_chart(data.overdue, labels), "chart-overdue"),
            ),
            page.section(
                "dispositions",
                title["dispositions"],
                "各部门反馈的处置结果（已纳入、已给予救助、不符合条件、已终止、一事一议、比对数据有误等）：预警是否转化为帮扶。"
                " / What departments answered (included, granted, not eligible, terminated, 一事一议, data error, …):"
                " whether warnings became help.",
                chart(outcome_chart(data.outcomes, labels), "chart-outcomes"),
            ),
            page.section(
                "assistance",
                title["assistance"],
                "幸福清单汇总：各部门各类救助的记录数、户数与金额（已撤销的不计）：避免遗漏与重复。"
                " / The happiness list totalled: records, households and money per department and kind (revoked ones"
                " apart), to spot gaps and double payments.",
                chart(
                    totals_chart(
                        data.totals,
                        labels,
                        what="amount",
                        title="救助金额（元）/ Amount (yuan) by department and kind",
                    ),
                    "chart-assistance-amount",
                ),
                chart(
                    totals_chart(
                        data.totals,
                        labels,
                        what="records",
                        title="救助记录数（含实物与服务）/ Records, in kind and services included",
                    ),
                    "chart-assistance-records",
                ),
                totals_table,
                page.table(
                    ("服务类别 / service kind", "记录 / records", "户（人）/ households"),
                    ((labels("service", x.service_kind), x.records, x.households) for x in data.services),
                    numeric=(1, 2),
                ),
            ),
            page.section(
                "needs",
                title["needs"],
                "仍有未办结预警的家庭及其困难类型、须办理部门：下一步要帮谁、谁来帮。"
                " / Households with open warnings, their hardship types and the departments that must act: who needs"
                " help next, and from whom.",
                chart(needs_chart(data.needs_by_hardship, labels), "chart-needs"),
                needs_table,
            ),
            page.section(
                "happiness",
                title["happiness"],
                "救助金额最多的若干户的救助链（一户一条救助链），身份证号已脱敏。"
                " / The assistance chains of the households that received most, one chain per household; id numbers"
                " masked.",
                chain_heads,
                chains_table,
            ),
            page.section(
                "quality",
                title["quality"],
                "各共享部门的数据经比对生成预警后，被处置部门反馈“比对数据有误”的次数与比例（容错纠错机制："
                "数据共享不准确不计为“不符合条件”）：哪个部门的数据需要核查纠正。 / Per sharing department, how many"
                " answers to the warnings its data raised said the data compared wrongly (data_error, kept apart from"
                " not eligible): whose data needs correcting.",
                page.table(
                    (
                        "共享部门 / department",
                        "处置反馈 / answers",
                        "比对数据有误 / data errors",
                        "比例 / rate",
                        "规则 / rules",
                    ),
                    (
                        (
                            labels("department", q.department),
                            q.dispositions,
                            q.data_errors,
                            f"{q.rate:.1%}",
                            "、".join(q.rules),
                        )
                        for q in data.quality.values()
                    ),
                    numeric=(1, 2, 3),
                ),
            ),
            page.section(
                "rules",
                title["rules"],
                "最近一次比对每条规则比中、新生成、暂缓（已答复“不符合条件”或“比对数据有误”且数据未变，免于重复打扰）、"
                "关闭和未办结的预警数：规则是否在起作用。 / Per rule, in the latest run: matched, raised, suppressed"
                " (answered not eligible within the rule's quiet period, or data error, data unchanged), closed and"
                " still open — whether each rule earns its keep.",
                f'<p class="why">{page.e(run_note)}</p>',
                rule_table,
            ),
        )
    )
    nav = " · ".join(f'<a href="#{a}">{page.e(t)}</a>' for a, t in SECTIONS)
    return f"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>低收入人口动态监测报告 / Low-income population monitoring report</title>
<style>{page.CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head>
<body>
<header>
<h1>低收入人口动态监测报告 / Low-income population monitoring report</h1>
<p class="meta">生成于 / generated {generated_at:%Y-%m-%d %H:%M} · {page.e(run_note)}</p>
<p class="meta">本报告仅含统计数、脱敏身份证号和截短的户令牌，不含姓名或身份证号明文。
 / Counts, masked id numbers and shortened household tokens only: no name or id number in clear.</p>
<nav>{nav}</nav>
</header>
<main>{body}</main>
<script>/* charts drawn while the page was still being laid out take their final size now */
window.addEventListener("load", function () {{ window.dispatchEvent(new Event("resize")); }});</script>
</body>
</html>
"""


def write_report(
    engine: sa.Engine,
    catalog: Any,
    out: Path,
    *,
    now: datetime,
    rule_titles: dict[str, str] | None = None,
    top: int = 20,
    sample: int = 10,
    rule_groups: dict[str, str] | None = None,
    sharing: dict[str, tuple[str, ...]] | None = None,
) -> Path:
    """Gather the figures and write the HTML atomically (a hidden part file renamed into place)."""
    with engine.connect() as conn:
        data = collect(conn, catalog, top=top, sample=sample, sharing=sharing)
    page = render(data, Labels(catalog, rule_titles), generated_at=now, groups=rule_groups)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = out.with_name(f".{out.name}.part")
    try:
        with part.open("w", encoding="utf-8") as fh:
            fh.write(page)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)
    return out


def report(settings: Any, out: Path | None = None, *, rebuild: bool = True, top: int = 20) -> Path:
    """The report of a deployment: bring the happiness list up to date (unless told not to), then write it.

    Written to ``out``, or ``<home>/reports/lidm-report-<date>.html``.
    """
    from lidm.central import db
    from lidm.contracts.load import load_catalog
    from lidm.monitor.assistance_spec import assistance_dir
    from lidm.monitor.lifecycle import city_now
    from lidm.monitor.rules import load_rules

    catalog = load_catalog(settings.contracts_dir)
    rules = load_rules(settings.rules_dir, catalog=catalog, params=settings.rule_params)
    now = city_now(settings.timezone)
    out = out or settings.home / "reports" / f"lidm-report-{now:%Y%m%d}.html"
    engine = db.connect_existing(settings)  # a report of a database nothing has set up would be empty, not news
    try:
        db.ensure_current(engine, settings)
        if rebuild:
            build_assistance_records(engine, catalog, now=now, directory=assistance_dir(settings.rules_dir))
        return write_report(
            engine,
            catalog,
            out,
            now=now,
            rule_titles={r.id: r.title for r in rules},
            top=top,
            rule_groups={r.id: r.group_of.value for r in rules},
            sharing=sharing_map(rules, catalog),
        )
    finally:
        engine.dispose()
